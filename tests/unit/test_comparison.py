"""The champion / challenger report (returnguard.comparison): metric math against scikit-learn and known
values, bootstrap intervals, and the promote / keep / insufficient_data recommendation."""

from __future__ import annotations

import random

import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from returnguard.comparison import (
    Record,
    average_precision,
    bootstrap,
    compare,
    record_from_archive,
    roc_auc,
)


def test_metrics_on_known_values() -> None:
    labels, scores = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    assert roc_auc(labels, scores) == pytest.approx(0.75)
    assert average_precision(labels, scores) == pytest.approx(0.833_333, abs=1e-6)
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.5)  # ties count half


def test_metrics_match_scikit_learn_on_random_scores_with_ties() -> None:
    rng = random.Random(2)
    for _ in range(20):
        labels = [1 if rng.random() < 0.2 else 0 for _ in range(300)]
        scores = [round(rng.random() * 0.6 + 0.4 * y * rng.random(), 2) for y in labels]  # ties on purpose
        assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
        assert average_precision(labels, scores) == pytest.approx(
            average_precision_score(labels, scores), abs=1e-12
        )


def test_bootstrap_interval_brackets_the_value_and_is_reproducible() -> None:
    rows = [random.Random(i).random() for i in range(200)]
    mean = lambda r: sum(r) / len(r)  # noqa: E731
    first = bootstrap(mean, rows, 300, random.Random(7))
    assert first.low < first.value < first.high
    assert first.high - first.low == pytest.approx(2 * 1.96 * 0.2887 / 200**0.5, rel=0.25)  # ≈ normal theory
    assert bootstrap(mean, rows, 300, random.Random(7)) == first


def population(rng: random.Random, n: int, separation: float, variant: str, **extra) -> list[Record]:
    records = []
    for _ in range(n):
        label = 1 if rng.random() < 0.15 else 0
        score = min(1.0, max(0.0, rng.gauss(0.3 + separation * label, 0.15)))
        action = "approve" if score < 0.5 else "otp_verification"
        records.append(Record(variant=variant, score=score, action=action, label=label, **extra))
    return records


def test_ab_a_clearly_better_challenger_is_promoted() -> None:
    rng = random.Random(11)
    records = population(rng, 1500, 0.10, "champion") + population(rng, 1500, 0.35, "challenger")
    report = compare(records, resamples=200)
    assert report.design == "ab"
    champion, challenger = report.variants["champion"], report.variants["challenger"]
    assert challenger.roc_auc.value > champion.roc_auc.value
    assert champion.roc_auc.low < champion.roc_auc.value < champion.roc_auc.high
    assert report.difference["pr_auc"].low > 0
    # the better model flags more positives, so its alert rate moves: within the margin here?
    if abs(report.difference["alert_rate"].value) > 0.02:
        assert report.recommendation == "keep" and any("alert rate" in r for r in report.reasons)
    else:
        assert report.recommendation == "promote"
    assert sum(challenger.action_mix.values()) == pytest.approx(1.0)


def test_ab_equal_models_are_kept_and_small_samples_are_insufficient() -> None:
    rng = random.Random(5)
    same = population(rng, 1500, 0.25, "champion") + population(rng, 1500, 0.25, "challenger")
    report = compare(same, resamples=200)
    assert report.recommendation == "keep"
    assert report.difference["pr_auc"].low < 0 < report.difference["pr_auc"].high
    few = population(rng, 100, 0.25, "champion") + population(rng, 100, 0.5, "challenger")
    small = compare(few, resamples=50)
    assert small.recommendation == "insufficient_data"
    assert any("need 200" in r for r in small.reasons)


def test_shadow_compares_both_models_on_the_same_orders() -> None:
    rng = random.Random(3)
    records = []
    for _ in range(2500):
        label = 1 if rng.random() < 0.15 else 0
        champion = min(1.0, max(0.0, rng.gauss(0.3 + 0.1 * label, 0.15)))
        challenger = min(1.0, max(0.0, rng.gauss(0.3 + 0.4 * label, 0.15)))
        action = "approve" if champion < 0.5 else "manual_review"
        records.append(Record("champion", champion, action, label, shadow_score=challenger))
    report = compare(records, resamples=200)
    assert report.design == "shadow"
    assert report.variants["challenger"].pr_auc.value > report.variants["champion"].pr_auc.value
    assert report.difference["roc_auc"].low > 0 and report.difference["pr_auc"].low > 0
    assert report.recommendation == "promote"
    assert report.variants["challenger"].action_mix == {}  # it decided nothing


def test_hard_rule_and_degraded_decisions_are_left_out() -> None:
    rng = random.Random(8)
    records = population(rng, 300, 0.3, "champion") + population(rng, 300, 0.3, "challenger")
    noise = [Record("champion", 0.99, "block", 0, hard_rule=True) for _ in range(500)]
    noise += [Record("challenger", 0.01, "approve", 1, degraded=True) for _ in range(500)]
    assert compare(records + noise, resamples=50).variants["champion"].decisions == 300
    assert compare(records + noise, resamples=50).variants["challenger"].decisions == 300


def test_archive_rows_become_records() -> None:
    row = {
        "variant": "challenger",
        "risk_score": 0.7,
        "recommended_action": "manual_review",
        "rules_triggered": '["high_amount"]',
        "degraded": False,
        "shadow_score": None,
    }
    record = record_from_archive(row, 1)
    assert record == Record("challenger", 0.7, "manual_review", 1, hard_rule=True, degraded=False)
    assert record_from_archive({**row, "variant": None, "rules_triggered": "[]"}, None).variant == "champion"


def test_a_parquet_null_score_read_by_pandas_as_nan_is_no_score() -> None:
    row = {
        "variant": "champion",
        "risk_score": 0.4,
        "recommended_action": "approve",
        "shadow_score": float("nan"),
    }
    assert record_from_archive(row, 0).shadow_score is None  # an A-B decision, not a shadow one
    assert record_from_archive({**row, "risk_score": float("nan")}, 0).score is None
    with pytest.raises(ValueError, match="NaN"):  # it looped forever before
        average_precision([1, 0], [float("nan"), 0.2])
