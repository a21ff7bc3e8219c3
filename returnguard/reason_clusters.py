"""Return reason clusters: customers' written return reasons embedded and grouped by k-means, with per
cluster its size, the reasons closest to its centre, the reason codes customers picked, and counts per
month. One code path for both places it runs: locally the HTML report embeds with multilingual-e5-small in
process (local/embeddings.py); in AWS a scheduled function embeds with Titan Text Embeddings V2, whose
vectors an S3 Vectors index keeps (returnguard/aws/reason_clusters.py). Only the encoder differs.

k-means is Lloyd's algorithm with k-means++ seeding in NumPy (the Lambda runtime has NumPy from the SDK
for pandas layer, not scikit-learn), a fixed seed, a few restarts and a bounded number of iterations:
it always ends, whatever the vectors (a NaN vector is refused before it starts).
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Encode = Callable[[Sequence[str]], np.ndarray]  # texts → one unit vector per row
MAX_ITERATIONS = 100


@dataclass
class ReasonCluster:
    label: str  # the reason closest to the cluster's centre
    size: int
    examples: list[str]
    reason_codes: dict[str, int]
    by_month: dict[str, int]


def _distances(vectors: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances, rows × centres, without a rows × centres × dimensions array."""
    squared = (vectors**2).sum(1)[:, None] - 2 * vectors @ centres.T + (centres**2).sum(1)[None]
    return np.maximum(squared, 0.0)


def _seed(vectors: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++: each next centre drawn with probability proportional to its squared distance."""
    centres = [vectors[rng.integers(len(vectors))]]
    nearest = _distances(vectors, np.array(centres))[:, 0]
    for _ in range(1, k):
        total = float(nearest.sum())
        pick = rng.integers(len(vectors)) if total <= 0 else rng.choice(len(vectors), p=nearest / total)
        centres.append(vectors[pick])
        nearest = np.minimum(nearest, _distances(vectors, vectors[pick][None])[:, 0])
    return np.array(centres)


def kmeans(vectors: np.ndarray, k: int, restarts: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(labels, centres) of the restart with the least within-cluster squared distance."""
    if not np.isfinite(vectors).all():
        raise ValueError("a vector has NaN or infinite values")
    k = max(1, min(k, len(vectors)))
    rng = np.random.default_rng(seed)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for _ in range(restarts):
        centres = _seed(vectors, k, rng)
        labels = np.full(len(vectors), -1)
        for _ in range(MAX_ITERATIONS):
            new = _distances(vectors, centres).argmin(axis=1)
            if np.array_equal(new, labels):
                break
            labels = new
            for c in range(k):
                members = vectors[labels == c]
                if len(members):  # an emptied cluster keeps its centre
                    centres[c] = members.mean(axis=0)
        inertia = float(((vectors - centres[labels]) ** 2).sum())
        if best is None or inertia < best[0]:
            best = (inertia, labels, centres)
    assert best is not None
    return best[1], best[2]


def reason_clusters(
    reasons: Sequence[str], codes: Sequence[str], months: Sequence[str], k: int, encode: Encode
) -> list[ReasonCluster]:
    """k-means over the reasons' embeddings (distinct texts embedded once) into `k` clusters, fewer when
    there are under 2k distinct reasons; clusters largest first."""
    distinct = list(dict.fromkeys(reasons))
    if not distinct:
        return []
    vectors = np.asarray(encode(distinct), dtype=np.float64)
    labels, centres = kmeans(vectors, max(1, min(k, len(distinct) // 2)))  # two reasons a cluster at least
    cluster_of = dict(zip(distinct, labels.tolist(), strict=True))
    clusters = []
    for c in range(len(centres)):
        members = [i for i, text in enumerate(distinct) if cluster_of[text] == c]
        if not members:
            continue
        ranked = sorted(members, key=lambda i: -float(vectors[i] @ centres[c]))
        rows = [i for i, text in enumerate(reasons) if cluster_of[text] == c]
        clusters.append(
            ReasonCluster(
                label=distinct[ranked[0]],
                size=len(rows),
                examples=[distinct[i] for i in ranked[:3]],
                reason_codes=dict(Counter(codes[i] for i in rows).most_common(3)),
                by_month=dict(sorted(Counter(months[i] for i in rows).items())),
            )
        )
    return sorted(clusters, key=lambda cluster: -cluster.size)


def reason_clusters_html(
    clusters: Sequence[ReasonCluster], sampled: int, total: int, embedded_by: str
) -> str:
    """The report's section; every customer text escaped."""
    months = sorted({m for c in clusters for m in c.by_month})
    header = "".join(f"<th>{html.escape(m)}</th>" for m in months)
    rows = "".join(
        f"<tr><td>{html.escape(c.label)}</td><td>{c.size}</td>"
        f"<td>{html.escape(' | '.join(c.examples))}</td>"
        f"<td>{html.escape(', '.join(f'{k} {v}' for k, v in c.reason_codes.items()))}</td>"
        + "".join(f"<td>{c.by_month.get(m, 0)}</td>" for m in months)
        + "</tr>"
        for c in clusters
    )
    return (
        f"<h2>Return reason clusters</h2><p>The customers' own return reasons, embedded with "
        f"{html.escape(embedded_by)} and grouped by k-means: {sampled:,} of {total:,} written reasons "
        "(the latest ones), per cluster its size, the reasons closest to its centre, the reason codes "
        "customers picked, and counts per month.</p>"
        f'<table id="reason-clusters"><tr><th>cluster</th><th>reasons</th><th>examples</th><th>codes</th>'
        f"{header}</tr>{rows}</table>"
    )
