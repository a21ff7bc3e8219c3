"""PSI math (returnguard.drift): known values, binning, drifted against undrifted data."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from returnguard.drift import (
    MIN_ROWS,
    DriftBaseline,
    DriftError,
    Histogram,
    build_baseline,
    drift_report,
    histogram,
    psi,
    psi_of_shares,
    quantile_edges,
    status,
)


def test_psi_of_known_shares() -> None:
    # (0.1-0.25)ln(0.1/0.25) + (0.2-0.25)ln(0.2/0.25) + (0.3-0.25)ln(0.3/0.25) + (0.4-0.25)ln(0.4/0.25)
    assert psi_of_shares([0.25] * 4, [0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.228_217, abs=1e-6)
    # a textbook pair: 0.5/0.5 against 0.9/0.1 -> 0.4 ln 1.8 + 0.4 ln 5 = 0.878898
    assert psi_of_shares([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.878_890, abs=1e-6)
    assert psi_of_shares([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0


def test_an_empty_bin_is_floored_not_infinite() -> None:
    value = psi_of_shares([0.5, 0.5], [1.0, 0.0])
    assert math.isfinite(value)
    assert value == pytest.approx((1 - 0.5) * math.log(2) + (1e-4 - 0.5) * math.log(1e-4 / 0.5))


@given(
    st.lists(st.floats(0.01, 1.0), min_size=2, max_size=12).flatmap(
        lambda a: st.tuples(st.just(a), st.lists(st.floats(0.01, 1.0), min_size=len(a), max_size=len(a)))
    )
)
def test_psi_is_symmetric_non_negative_and_zero_only_for_equal_shares(pair) -> None:
    a, b = pair
    a = [x / sum(a) for x in a]
    b = [x / sum(b) for x in b]
    assert psi_of_shares(a, b) >= -1e-12
    assert psi_of_shares(a, b) == pytest.approx(psi_of_shares(b, a))
    assert psi_of_shares(a, a) == 0.0


def test_decile_edges_and_value_bins_for_discrete_features() -> None:
    assert quantile_edges(list(range(1, 101))) == (10, 20, 30, 40, 50, 60, 70, 80, 90)
    assert quantile_edges([0, 0, 0, 1, 1]) == (0, 1)  # a flag: bins (-inf,0], (0,1], (1,inf)
    flag = histogram([0] * 70 + [1] * 30)
    assert flag.shares == pytest.approx((0.7, 0.3, 0.0))
    assert flag.counts([0, 1, 1, 2]) == [1, 2, 1]
    with pytest.raises(DriftError):
        Histogram(edges=(1.0, 0.5), shares=(0.3, 0.3, 0.4))


def test_psi_of_live_values_counts_them_into_the_reference_bins() -> None:
    reference = Histogram(edges=(0.5,), shares=(0.5, 0.5))
    value, counted = psi(reference, [0.1] * 9 + [0.9] + [None, float("nan")])
    assert counted == 10
    assert value == pytest.approx(0.878_890, abs=1e-6)


def _rows(rng: random.Random, n: int, shift: float = 0.0, score_shift: float = 0.0) -> list[dict]:
    return [
        {
            "amount": rng.lognormvariate(7 + shift, 0.5),
            "is_cod": 1.0 if rng.random() < 0.3 + shift / 4 else 0.0,
            "score": min(1.0, max(0.0, rng.betavariate(2, 8) + score_shift)),
        }
        for _ in range(n)
    ]


def baseline_of(rows: list[dict]) -> DriftBaseline:
    return build_baseline(
        "v1",
        {name: [r[name] for r in rows] for name in ("amount", "is_cod")},
        [r["score"] for r in rows],
        window={"features": "train"},
    )


def test_same_distribution_is_stable_and_a_shifted_one_drifts() -> None:
    rng = random.Random(7)
    baseline = baseline_of(_rows(rng, 4000))
    same = drift_report(baseline, _rows(rng, 2000))
    assert same.status == "stable"
    assert same.max_feature_psi < 0.05 and same.score_psi is not None and same.score_psi < 0.05

    shifted = drift_report(baseline, _rows(rng, 2000, shift=0.8, score_shift=0.15))
    assert shifted.status == "drifted"
    assert shifted.drifted_features[0] == "amount"  # the biggest shift comes first
    assert shifted.features["amount"] > 0.25 and shifted.score_psi > 0.25
    # a JSON round trip of the baseline changes nothing
    again = DriftBaseline.from_dict(baseline.as_dict())
    assert (
        drift_report(again, _rows(random.Random(1), 500, shift=0.8)).features
        == drift_report(baseline, _rows(random.Random(1), 500, shift=0.8)).features
    )


def test_too_few_live_rows_give_no_verdict() -> None:
    rng = random.Random(3)
    report = drift_report(baseline_of(_rows(rng, 1000)), _rows(rng, MIN_ROWS - 1, shift=2))
    assert report.status == "insufficient_data" and report.features == {}
    assert report.as_dict()["status"] == "insufficient_data"


def test_status_bands_and_threshold_validation() -> None:
    assert [status(v) for v in (0.0, 0.099, 0.1, 0.249, 0.25)] == [
        "stable",
        "stable",
        "moderate",
        "moderate",
        "drifted",
    ]
    with pytest.raises(DriftError):
        drift_report(baseline_of(_rows(random.Random(0), 100)), [], drifted=0.1, moderate=0.2)
    with pytest.raises(DriftError):
        DriftBaseline.from_dict({"features": {}})
