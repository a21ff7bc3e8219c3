"""The pure rule definitions: boundaries of each rule and the score-to-category mapping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from returnguard import rules
from returnguard.currency import to_usd
from returnguard.rules import (
    RuleFlags,
    is_high_amount,
    is_outlier,
    is_velocity,
    online_flags,
    risk_category,
    risk_score,
)


def test_high_amount_is_strictly_above_5000_usd_after_conversion():
    assert not is_high_amount(to_usd(5000.0, "USD"))
    assert is_high_amount(to_usd(5000.01, "USD"))
    assert not is_high_amount(to_usd(415_000.0, "INR"))  # exactly 5,000 USD at 83 INR/USD
    assert is_high_amount(to_usd(415_000.83, "INR"))


def test_velocity_counts_this_order_with_the_earlier_ones_in_the_window():
    # the window itself ([t - 60 s, t)) is the feature's: tests/unit/test_features.py checks its edges
    assert not is_velocity(0)
    assert is_velocity(1)  # seed 002: another order within the minute before
    assert not is_velocity(1, velocity_orders=3)
    assert is_velocity(2, velocity_orders=3)
    assert online_flags(10.0, 1, False).velocity
    assert not online_flags(10.0, 1, False, velocity_orders=3).velocity


def test_outlier_needs_history_and_both_margins():
    assert not is_outlier(1000.0, 2, 10.0, 0.0)  # too little history
    assert is_outlier(1000.0, 3, 10.0, 0.0)
    assert not is_outlier(15.0, 5, 10.0, 0.0)  # above mean + 3 std but not twice the mean
    assert not is_outlier(40.0, 5, 10.0, 10.0)  # twice the mean but not above mean + 3 std
    assert is_outlier(40.01, 5, 10.0, 10.0)


def test_each_flag_maps_to_its_category():
    assert risk_category(risk_score(RuleFlags())) == "Low"
    assert risk_category(risk_score(RuleFlags(velocity=True))) == "Medium"
    assert risk_category(risk_score(RuleFlags(outlier=True))) == "Medium"
    assert risk_category(risk_score(RuleFlags(velocity=True, outlier=True))) == "High"
    assert risk_category(risk_score(RuleFlags(high_amount=True))) == "High"
    assert risk_category(risk_score(RuleFlags(blocklisted=True))) == "High"
    assert risk_score(RuleFlags(True, True, True, True)) == rules.MAX_RISK_SCORE


def test_triggered_names_in_stable_order():
    assert RuleFlags(outlier=True, blocklisted=True).triggered() == ("blocklisted", "outlier")


flags = st.builds(RuleFlags, st.booleans(), st.booleans(), st.booleans(), st.booleans())


@given(flags, st.sampled_from(["blocklisted", "high_amount", "velocity", "outlier"]))
def test_another_flag_never_lowers_the_score_or_category(base: RuleFlags, extra: str):
    more = RuleFlags(**{**base.__dict__, extra: True})
    order = {name: i for i, name in enumerate(rules.RISK_CATEGORIES)}
    assert risk_score(more) >= risk_score(base)
    assert order[risk_category(risk_score(more))] >= order[risk_category(risk_score(base))]


@pytest.mark.parametrize(
    "score,category", [(0, "Low"), (29, "Low"), (30, "Medium"), (59, "Medium"), (60, "High")]
)
def test_category_boundaries(score: int, category: str):
    assert risk_category(score) == category


def test_online_flags_from_the_feature_vector():
    assert online_flags(5000.0, 0.0, False) == RuleFlags()
    assert online_flags(5000.01, 1.0, True) == RuleFlags(blocklisted=True, high_amount=True, velocity=True)
