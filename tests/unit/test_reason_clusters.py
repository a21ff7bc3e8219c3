"""The k-means both reason-cluster paths use (returnguard/reason_clusters.py): it finds separated groups,
ends on odd data (identical vectors, more clusters than vectors) and refuses NaN instead of spinning."""

from __future__ import annotations

import numpy as np
import pytest

from returnguard.reason_clusters import kmeans, reason_clusters


def test_separated_groups_are_found_whatever_their_order():
    rng = np.random.default_rng(1)
    groups = [rng.normal(centre, 0.05, size=(20, 8)) for centre in (0.0, 3.0, -3.0)]
    vectors = np.vstack(groups)[rng.permutation(60)]
    labels, centres = kmeans(vectors, 3)
    assert len(centres) == 3
    assert sorted(np.bincount(labels).tolist()) == [20, 20, 20]


@pytest.mark.parametrize("vectors", [np.ones((5, 4)), np.eye(2)], ids=["identical", "fewer_than_k"])
def test_odd_data_ends_with_every_vector_labelled(vectors):
    labels, centres = kmeans(vectors, 8)
    assert len(labels) == len(vectors) and len(centres) <= len(vectors)


def test_a_nan_vector_is_refused():
    vectors = np.ones((4, 3))
    vectors[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        kmeans(vectors, 2)


def test_clusters_count_rows_not_distinct_texts_and_keep_codes_and_months():
    encode = lambda texts: np.array([[1.0, 0.0] if "box" in t else [0.0, 1.0] for t in texts])  # noqa: E731
    reasons = ["empty box", "empty box", "box empty", "too small", "small size"]
    clusters = reason_clusters(
        reasons, ["e", "e", "e", "s", "s"], ["2026-10", "2026-11", "2026-11", "2026-11", "2026-11"], 8, encode
    )
    assert [(c.size, c.reason_codes, c.by_month) for c in clusters] == [
        (3, {"e": 3}, {"2026-10": 1, "2026-11": 2}),
        (2, {"s": 2}, {"2026-11": 2}),
    ]
    assert reason_clusters([], [], [], 8, encode) == []
