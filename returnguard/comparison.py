"""Champion against challenger from recorded decisions and matured labels: ROC-AUC, PR-AUC, alert rate and
action mix per variant, bootstrap confidence intervals, and a promote / keep recommendation.

Two designs, read from the same records:
- A-B: each decision was made by one variant; the groups are compared as independent samples.
- shadow: every decision carries the champion's score and the challenger's shadow score; both models are
  compared on the same orders (paired bootstrap), which needs far fewer orders for the same certainty.
Decisions a hard rule made, and degraded ones (the fallback model scored them), are left out: they say
nothing about either model. Pure Python (no numpy), seeded, so a report can be reproduced.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ALERT_ACTIONS = frozenset({"otp_verification", "manual_review", "block"})
MIN_LABELED = 200  # per variant (A-B) or in total (shadow)
MIN_POSITIVES = 20
AUC_MARGIN = 0.005  # the challenger's ROC-AUC may be this much lower (within noise) and still win on PR-AUC
ALERT_RATE_MARGIN = 0.02  # ... and its alert rate may move at most this much (absolute)


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Mann-Whitney: the chance a random positive outscores a random negative (ties count half)."""
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    positives = sum(labels)
    negatives = len(labels) - positives
    if not positives or not negatives:
        return float("nan")
    rank_sum = sum(r for r, y in zip(ranks, labels, strict=True) if y)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def average_precision(labels: Sequence[int], scores: Sequence[float]) -> float:
    """PR-AUC as average precision: Σ (recall gained at a threshold) × (precision there), thresholds
    at each distinct score from the highest down (the definition scikit-learn uses)."""
    positives = sum(labels)
    if not positives:
        return float("nan")
    if any(score != score for score in scores):  # NaN equals nothing: the threshold loop would never advance
        raise ValueError("average_precision: a score is NaN")
    pairs = sorted(zip(scores, labels, strict=True), key=lambda p: -p[0])
    total = true = seen = 0
    area = 0.0
    i = 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            true += pairs[j][1]
            seen += 1
            j += 1
        gained = true - total
        if gained:
            area += (gained / positives) * (true / seen)
            total = true
        i = j
    return area


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"value": round(self.value, 4), "low": round(self.low, 4), "high": round(self.high, 4)}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(v for v in values if v == v)  # NaN (a resample without a class) left out
    if not ordered:
        return float("nan")
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def bootstrap(
    statistic: Callable[[list[Any]], float], rows: list[Any], resamples: int, rng: random.Random
) -> Interval:
    """The statistic with its 95 % percentile interval over `resamples` resamples with replacement."""
    values = [statistic([rows[rng.randrange(len(rows))] for _ in rows]) for _ in range(resamples)]
    return Interval(statistic(rows), _percentile(values, 0.025), _percentile(values, 0.975))


@dataclass(frozen=True)
class Record:
    """One decision as the report needs it (from the decisions archive or table, with its label)."""

    variant: str  # champion | challenger: who decided
    score: float | None  # the deciding model's score
    action: str
    label: int | None  # matured label; None: not mature yet (left out of the model metrics)
    hard_rule: bool = False
    degraded: bool = False
    shadow_score: float | None = None  # shadow mode: the challenger's score of the same order


@dataclass
class VariantStats:
    decisions: int
    labeled: int
    positives: int
    roc_auc: Interval | None
    pr_auc: Interval | None
    alert_rate: Interval
    action_mix: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "decisions": self.decisions,
            "labeled": self.labeled,
            "positives": self.positives,
            "roc_auc": self.roc_auc.as_dict() if self.roc_auc else None,
            "pr_auc": self.pr_auc.as_dict() if self.pr_auc else None,
            "alert_rate": self.alert_rate.as_dict(),
            "action_mix": {k: round(v, 4) for k, v in sorted(self.action_mix.items())},
        }


@dataclass
class Comparison:
    design: str  # ab | shadow
    variants: dict[str, VariantStats]
    difference: dict[str, Interval]  # challenger - champion
    recommendation: str  # promote | keep | insufficient_data
    reasons: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "design": self.design,
            "variants": {k: v.as_dict() for k, v in self.variants.items()},
            "difference_challenger_minus_champion": {k: v.as_dict() for k, v in self.difference.items()},
            "recommendation": self.recommendation,
            "reasons": self.reasons,
        }


def _alert_rate(rows: list[tuple[Any, float, str]]) -> float:
    return sum(1 for _, _, action in rows if action in ALERT_ACTIONS) / len(rows) if rows else float("nan")


def _stats(rows: list[tuple[Any, float, str]], labeled: list[tuple[Any, float, str]], resamples, rng):
    positives = sum(y for y, _, _ in labeled)
    enough = labeled and 0 < positives < len(labeled)
    mix = Counter(action for _, _, action in rows)
    return VariantStats(
        decisions=len(rows),
        labeled=len(labeled),
        positives=positives,
        roc_auc=bootstrap(
            lambda r: roc_auc([y for y, _, _ in r], [s for _, s, _ in r]), labeled, resamples, rng
        )
        if enough
        else None,
        pr_auc=bootstrap(
            lambda r: average_precision([y for y, _, _ in r], [s for _, s, _ in r]), labeled, resamples, rng
        )
        if enough
        else None,
        alert_rate=bootstrap(_alert_rate, rows, resamples, rng)
        if rows
        else Interval(float("nan"), float("nan"), float("nan")),
        action_mix={action: count / len(rows) for action, count in mix.items()} if rows else {},
    )


def _recommend(
    difference: dict[str, Interval], variants: dict[str, VariantStats], design: str
) -> tuple[str, list[str]]:
    groups = [variants["challenger"]] if design == "shadow" else list(variants.values())
    short = [
        f"{name}: {s.labeled} labeled / {s.positives} positive decisions (need {MIN_LABELED} / {MIN_POSITIVES})"
        for name, s in variants.items()
        if s in groups and (s.labeled < MIN_LABELED or s.positives < MIN_POSITIVES)
    ]
    if short or "pr_auc" not in difference:
        return "insufficient_data", short or ["no labeled decisions of both classes"]
    reasons = []
    auc, pr, alerts = difference["roc_auc"], difference["pr_auc"], difference.get("alert_rate")
    if pr.low <= 0:
        reasons.append(
            f"PR-AUC gain {pr.value:+.4f} is not above 0 with 95 % confidence ({pr.low:+.4f} .. {pr.high:+.4f})"
        )
    if auc.low < -AUC_MARGIN:
        reasons.append(f"ROC-AUC may be worse by more than {AUC_MARGIN} ({auc.low:+.4f} .. {auc.high:+.4f})")
    if alerts is not None and abs(alerts.value) > ALERT_RATE_MARGIN:
        reasons.append(f"alert rate moves by {alerts.value:+.4f} (more than {ALERT_RATE_MARGIN})")
    if reasons:
        return "keep", reasons
    return "promote", [
        f"PR-AUC {pr.value:+.4f} ({pr.low:+.4f} .. {pr.high:+.4f}), ROC-AUC {auc.value:+.4f} "
        f"({auc.low:+.4f} .. {auc.high:+.4f}), alert rate within {ALERT_RATE_MARGIN}"
    ]


def compare(records: Iterable[Record], *, resamples: int = 500, seed: int = 0) -> Comparison:
    """The comparison report; shadow design when any record carries a shadow score, else A-B."""
    rng = random.Random(seed)
    usable = [r for r in records if not r.hard_rule and not r.degraded and r.score is not None]
    shadow = [r for r in usable if r.shadow_score is not None]
    if shadow:
        champion_rows = [(r.label, float(r.score), r.action) for r in shadow]  # type: ignore[arg-type]
        # the challenger decided nothing: its alert rate is what it would have been at the same thresholds,
        # which only the deciding model's actions reveal, so its action mix is not reported
        labeled = [r for r in shadow if r.label is not None]
        champion = _stats(champion_rows, [x for x in champion_rows if x[0] is not None], resamples, rng)
        challenger_rows = [(r.label, float(r.shadow_score), "") for r in shadow]  # type: ignore[arg-type]
        challenger = _stats(challenger_rows, [x for x in challenger_rows if x[0] is not None], resamples, rng)
        challenger.action_mix, challenger.alert_rate = {}, Interval(float("nan"), float("nan"), float("nan"))
        pairs = [(int(r.label), float(r.score), float(r.shadow_score)) for r in labeled]  # type: ignore[arg-type]
        difference = {}
        if pairs and 0 < sum(p[0] for p in pairs) < len(pairs):
            for name, metric in (("roc_auc", roc_auc), ("pr_auc", average_precision)):
                difference[name] = bootstrap(
                    lambda rows, m=metric: (  # type: ignore[misc]
                        m([y for y, _, _ in rows], [s for _, _, s in rows])
                        - m([y for y, _, _ in rows], [s for _, s, _ in rows])
                    ),
                    pairs,
                    resamples,
                    rng,
                )
        variants = {"champion": champion, "challenger": challenger}
        recommendation, reasons = _recommend(difference, variants, "shadow")
        return Comparison("shadow", variants, difference, recommendation, reasons)

    groups: dict[str, list[tuple[Any, float, str]]] = {"champion": [], "challenger": []}
    for r in usable:
        groups.setdefault(r.variant, []).append((r.label, float(r.score), r.action))  # type: ignore[arg-type]
    by_group = {name: [x for x in rows if x[0] is not None] for name, rows in groups.items()}
    variants = {
        name: _stats(groups[name], by_group[name], resamples, rng) for name in ("champion", "challenger")
    }
    difference = {}
    a, b = by_group["champion"], by_group["challenger"]

    def two_sample(metric: Callable[[list[Any]], float], left: list[Any], right: list[Any]) -> Interval:
        values = [
            metric([right[rng.randrange(len(right))] for _ in right])
            - metric([left[rng.randrange(len(left))] for _ in left])
            for _ in range(resamples)
        ]
        return Interval(metric(right) - metric(left), _percentile(values, 0.025), _percentile(values, 0.975))

    if variants["champion"].roc_auc and variants["challenger"].roc_auc:
        difference["roc_auc"] = two_sample(
            lambda r: roc_auc([y for y, _, _ in r], [s for _, s, _ in r]), a, b
        )
        difference["pr_auc"] = two_sample(
            lambda r: average_precision([y for y, _, _ in r], [s for _, s, _ in r]), a, b
        )
    if groups["champion"] and groups["challenger"]:
        difference["alert_rate"] = two_sample(_alert_rate, groups["champion"], groups["challenger"])
    recommendation, reasons = _recommend(difference, variants, "ab")
    return Comparison("ab", variants, difference, recommendation, reasons)


def record_from_archive(row: Mapping[str, Any], label: int | None) -> Record:
    """A row of the decisions archive (returnguard.archive columns) with its matured label."""
    import json

    rules = json.loads(row.get("rules_triggered") or "[]")
    return Record(
        variant=row.get("variant") or "champion",
        score=_number(row.get("risk_score")),
        action=str(row.get("recommended_action")),
        label=label,
        hard_rule=bool(rules),
        degraded=bool(row.get("degraded")),
        shadow_score=_number(row.get("shadow_score")),
    )


def _number(value: Any) -> float | None:
    """A score column's value, None when absent: pandas reads a Parquet null in a double column as NaN."""
    if value is None or value != value:
        return None
    return float(value)


DAY_MS = 86_400_000
MATURITY_DAYS = (
    51.0  # return window (30) + inspection delay (21): training's maturity gap (training/train.py)
)


def matured_label(
    order_time_ms: int, label: tuple[int, int] | None, as_of_ms: int, maturity_days: float = MATURITY_DAYS
) -> int | None:
    """The label the report may use at `as_of_ms`, as training judges it: a label row (is_abuse,
    labeled_at_ms) counts once known; an order without one is a negative once mature; else None."""
    if label is not None and label[1] < as_of_ms:
        return int(label[0])
    if order_time_ms + maturity_days * DAY_MS <= as_of_ms:
        return None if label is not None else 0  # a label still to come is unknown, not negative
    return None
