"""Drift: the population stability index (PSI) of each feature and of the score, live against the reference.

The reference is a `DriftBaseline` the training run writes beside the model (`drift_baseline.json`): per
feature, bin edges from the deciles of the training window and the share of rows in each bin; for the
score, the same over the model's own out-of-sample scores on its test window. Live rows (captured
endpoint requests, or the audit trail's feature vectors) are counted into the same bins.

    PSI = sum over bins of (live share - reference share) * ln(live share / reference share)

Rule of thumb (and the defaults here): below 0.1 stable, 0.1 to 0.25 moderate, 0.25 and above drifted.
Pure Python (no numpy): it runs in the drift Lambda with nothing but the standard library.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

BASELINE_FILE = "drift_baseline.json"
DEFAULT_BINS = 10
# An empty bin would make ln(0) infinite; its share is floored at this (the usual PSI convention).
MIN_SHARE = 1e-4
MODERATE = 0.1
DRIFTED = 0.25
MIN_ROWS = 50  # fewer live rows than this: no verdict (PSI of a handful of rows is noise)
SCORE = "score"


class DriftError(ValueError):
    code = "invalid_drift_input"


@dataclass(frozen=True)
class Histogram:
    """Bins (-inf, e0], (e0, e1], ..., (ek, inf) and the reference share of rows in each."""

    edges: tuple[float, ...]
    shares: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.shares) != len(self.edges) + 1:
            raise DriftError(
                f"{len(self.edges)} edges need {len(self.edges) + 1} shares, got {len(self.shares)}"
            )
        if list(self.edges) != sorted(set(self.edges)):
            raise DriftError("edges must be strictly increasing")

    def counts(self, values: Iterable[float]) -> list[int]:
        counts = [0] * len(self.shares)
        for value in values:
            counts[bisect_left(self.edges, value)] += 1
        return counts

    def as_dict(self) -> dict[str, list[float]]:
        return {"edges": list(self.edges), "shares": list(self.shares)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Histogram:
        return cls(
            edges=tuple(float(e) for e in data["edges"]), shares=tuple(float(s) for s in data["shares"])
        )


def _clean(values: Iterable[float | None]) -> list[float]:
    """Finite numbers only: a missing or NaN value is not a sample of the distribution."""
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def quantile_edges(values: Sequence[float], bins: int = DEFAULT_BINS) -> tuple[float, ...]:
    """The cut points between `bins` equal-count bins (nearest-rank quantiles), duplicates dropped: a
    feature with few distinct values (a flag, a small count) gets one bin per value instead."""
    ordered = sorted(values)
    if not ordered:
        raise DriftError("no values to bin")
    cuts = {ordered[min(len(ordered) - 1, math.ceil(len(ordered) * i / bins) - 1)] for i in range(1, bins)}
    return tuple(sorted(cuts))


def histogram(values: Iterable[float | None], bins: int = DEFAULT_BINS) -> Histogram:
    clean = _clean(values)
    edges = quantile_edges(clean, bins)
    counts = Histogram(edges, (0.0,) * (len(edges) + 1)).counts(clean)
    return Histogram(edges, tuple(c / len(clean) for c in counts))


def psi_of_shares(reference: Sequence[float], live: Sequence[float]) -> float:
    """PSI between two share vectors over the same bins (each floored at MIN_SHARE)."""
    if len(reference) != len(live):
        raise DriftError("share vectors differ in length")
    total = 0.0
    for expected, actual in zip(reference, live, strict=True):
        expected, actual = max(expected, MIN_SHARE), max(actual, MIN_SHARE)
        total += (actual - expected) * math.log(actual / expected)
    return total


def psi(reference: Histogram, values: Iterable[float | None]) -> tuple[float, int]:
    """(PSI of `values` against the reference, how many finite values were counted)."""
    clean = _clean(values)
    if not clean:
        return 0.0, 0
    counts = reference.counts(clean)
    return psi_of_shares(reference.shares, [c / len(clean) for c in counts]), len(clean)


def status(value: float, moderate: float = MODERATE, drifted: float = DRIFTED) -> str:
    if value >= drifted:
        return "drifted"
    return "moderate" if value >= moderate else "stable"


@dataclass(frozen=True)
class DriftBaseline:
    model_version: str
    window: Mapping[str, Any]  # what the reference rows were: {"features": {...}, "score": {...}}
    features: Mapping[str, Histogram]
    score: Histogram | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "window": dict(self.window),
            "features": {name: h.as_dict() for name, h in self.features.items()},
            "score": self.score.as_dict() if self.score else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftBaseline:
        try:
            return cls(
                model_version=str(data["model_version"]),
                window=dict(data.get("window") or {}),
                features={name: Histogram.from_dict(h) for name, h in data["features"].items()},
                score=Histogram.from_dict(data["score"]) if data.get("score") else None,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise DriftError(f"not a drift baseline: {error!r}") from None


def build_baseline(
    model_version: str,
    feature_columns: Mapping[str, Sequence[float | None]],
    scores: Sequence[float] | None,
    window: Mapping[str, Any],
    bins: int = DEFAULT_BINS,
) -> DriftBaseline:
    """The reference histograms of a training run (features over its training rows, the score over its
    out-of-sample scores)."""
    features = {name: histogram(values, bins) for name, values in feature_columns.items() if _clean(values)}
    return DriftBaseline(
        model_version=model_version,
        window=window,
        features=features,
        score=histogram(scores, bins) if scores is not None and _clean(scores) else None,
    )


@dataclass
class DriftReport:
    model_version: str
    live_rows: int
    window: Mapping[str, Any]
    features: dict[str, float] = field(default_factory=dict)  # PSI per feature
    score_psi: float | None = None
    drifted_threshold: float = DRIFTED
    moderate_threshold: float = MODERATE

    @property
    def enough_rows(self) -> bool:
        return self.live_rows >= MIN_ROWS

    @property
    def max_feature_psi(self) -> float:
        return max(self.features.values(), default=0.0)

    @property
    def drifted_features(self) -> list[str]:
        return sorted(
            (name for name, value in self.features.items() if value >= self.drifted_threshold),
            key=lambda name: -self.features[name],
        )

    @property
    def status(self) -> str:
        if not self.enough_rows:
            return "insufficient_data"
        worst = max(self.max_feature_psi, self.score_psi or 0.0)
        return status(worst, self.moderate_threshold, self.drifted_threshold)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "status": self.status,
            "live_rows": self.live_rows,
            "min_rows": MIN_ROWS,
            "thresholds": {"moderate": self.moderate_threshold, "drifted": self.drifted_threshold},
            "window": dict(self.window),
            "score_psi": self.score_psi,
            "max_feature_psi": self.max_feature_psi,
            "drifted_features": self.drifted_features,
            "features": dict(sorted(self.features.items(), key=lambda item: -item[1])),
        }


def drift_report(
    baseline: DriftBaseline,
    rows: Iterable[Mapping[str, Any]],
    *,
    window: Mapping[str, Any] | None = None,
    drifted: float = DRIFTED,
    moderate: float = MODERATE,
) -> DriftReport:
    """PSI of each baseline feature and of the score over live `rows` ({feature: value, ..., "score": p}).

    `rows` is read once, row by row, into per-bin counts: a day of captured traffic (hundreds of
    thousands of rows) needs memory for the counts only."""
    if not 0 < moderate < drifted:
        raise DriftError(f"thresholds must satisfy 0 < moderate < drifted, got {moderate}, {drifted}")
    references = dict(baseline.features)
    if baseline.score is not None:
        references[SCORE] = baseline.score
    counts = {name: [0] * len(h.shares) for name, h in references.items()}
    live_rows = 0
    for row in rows:
        live_rows += 1
        for name, reference in references.items():
            value = row.get(name)
            if value is None:
                continue
            value = float(value)
            if math.isfinite(value):
                counts[name][bisect_left(reference.edges, value)] += 1
    report = DriftReport(
        model_version=baseline.model_version,
        live_rows=live_rows,
        window=dict(window or {}),
        drifted_threshold=drifted,
        moderate_threshold=moderate,
    )
    if not report.enough_rows:
        return report
    for name, reference in references.items():
        total = sum(counts[name])
        if not total:
            continue
        value = round(psi_of_shares(reference.shares, [c / total for c in counts[name]]), 6)
        if name == SCORE:
            report.score_psi = value
        else:
            report.features[name] = value
    return report
