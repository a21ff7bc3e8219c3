"""The refund-action ladder: per deployment, validated, monotone; deny_refund only from hard rules."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from returnguard.policy import LEVELS
from returnguard.returns_policy import (
    DEFAULT_LADDER,
    LADDER_ACTIONS,
    REFUND_STRICTNESS,
    ReturnPolicyConfig,
    apply_return,
)
from returnguard.returns_rules import DENY_RULES, REVIEW_RULES

MODEL_THRESHOLDS = {"decision": 0.5, "medium": 0.2, "high": 0.5, "critical": 0.8}


def test_default_ladder_maps_levels_to_refund_actions() -> None:
    config = ReturnPolicyConfig.from_settings(MODEL_THRESHOLDS)
    actions = [apply_return(s, (), config).recommended_action for s in (0.1, 0.3, 0.6, 0.9)]
    assert actions == [
        "instant_refund",
        "refund_after_pickup_inspection",
        "photo_or_video_proof",
        "manual_review",
    ]
    assert [apply_return(s, (), config).review_required for s in (0.1, 0.9)] == [False, True]


def test_a_deployment_overrides_thresholds_ladder_and_window() -> None:
    config = ReturnPolicyConfig.from_settings(
        MODEL_THRESHOLDS, {"high": 0.6, "ladder": {"high": "open_box_pickup"}, "return_window_days": 10}
    )
    assert (config.medium, config.high, config.critical) == (0.2, 0.6, 0.8)
    assert config.ladder == {**DEFAULT_LADDER, "high": "open_box_pickup"}
    assert config.return_window_days == 10
    assert apply_return(0.55, (), config).recommended_action == "refund_after_pickup_inspection"
    assert apply_return(0.65, (), config).recommended_action == "open_box_pickup"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"decision": 0.4}, "unknown return policy setting decision"),
        ({"ladder": {"low": "deny_refund"}}, "deny_refund comes from hard rules only"),
        (
            {"ladder": {"medium": "photo_or_video_proof", "high": "refund_after_pickup_inspection"}},
            "more lenient",
        ),
        ({"ladder": {"low": "refund_after_pickup_inspection", "medium": "instant_refund"}}, "more lenient"),
        ({"ladder": {"critical": "open_box_pickup"}}, "a person decides critical returns"),
        ({"ladder": {"urgent": "manual_review"}}, "unknown level urgent"),
        ({"ladder": ["manual_review"]}, "must be a JSON object"),
        ({"high": 0.95}, "medium <= high <= critical"),
        ({"high": "0.5"}, "high must be a number"),
        ({"return_window_days": 0}, "between 1 and 365"),
        ({"return_window_days": 7.5}, "whole number"),
    ],
)
def test_an_invalid_return_policy_names_what_is_wrong(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ReturnPolicyConfig.from_settings(MODEL_THRESHOLDS, overrides)


def test_no_score_is_never_an_instant_refund() -> None:
    config = ReturnPolicyConfig()
    assert apply_return(None, (), config).recommended_action == "refund_after_pickup_inspection"


def test_deny_refund_comes_only_from_a_rule_and_goes_to_a_person() -> None:
    config = ReturnPolicyConfig()
    # the model alone, however sure, never denies
    assert apply_return(1.0, (), config).recommended_action == "manual_review"
    denied = apply_return(0.0, ("refund_exceeds_paid",), config, deny=True)
    assert (denied.recommended_action, denied.risk_level, denied.review_required) == (
        "deny_refund",
        "critical",
        True,
    )
    reviewed = apply_return(0.0, ("order_customer_mismatch",), config, review=True)
    assert (reviewed.recommended_action, reviewed.rules_triggered) == (
        "manual_review",
        ("order_customer_mismatch",),
    )


# Every valid ladder: an action per level, never more lenient as the level rises, critical to a person.
def _ladders() -> st.SearchStrategy[dict[str, str]]:
    ranked = st.lists(st.sampled_from(LADDER_ACTIONS[:-1]), min_size=3, max_size=3).map(
        lambda actions: sorted(actions, key=REFUND_STRICTNESS.__getitem__)
    )
    return ranked.map(lambda a: {"low": a[0], "medium": a[1], "high": a[2], "critical": "manual_review"})


unit = st.floats(min_value=0.0, max_value=1.0)
rules = st.sampled_from(
    [((), False, False), (("blocklisted",), True, False), (("order_customer_mismatch",), False, True)]
)


@given(
    ladder=_ladders(),
    cuts=st.lists(unit, min_size=3, max_size=3).map(sorted),
    a=unit,
    b=unit,
    fired=rules,
)
def test_a_higher_score_never_gets_a_more_lenient_action(
    ladder: dict[str, str], cuts: list[float], a: float, b: float, fired: tuple
) -> None:
    config = ReturnPolicyConfig(medium=cuts[0], high=cuts[1], critical=cuts[2], ladder=ladder)
    triggered, deny, review = fired
    low, high = sorted((a, b))
    lo = apply_return(low, triggered, config, deny=deny, review=review)
    hi = apply_return(high, triggered, config, deny=deny, review=review)
    assert REFUND_STRICTNESS[hi.recommended_action] >= REFUND_STRICTNESS[lo.recommended_action]
    assert LEVELS.index(hi.risk_level) >= LEVELS.index(lo.risk_level)
    # and a hard rule never makes any score more lenient
    plain = apply_return(low, (), config)
    assert REFUND_STRICTNESS[lo.recommended_action] >= REFUND_STRICTNESS[plain.recommended_action]
    assert (lo.recommended_action == "deny_refund") == deny


@given(ladder=st.dictionaries(st.sampled_from(LEVELS), st.sampled_from(list(REFUND_STRICTNESS)), min_size=4))
def test_every_ladder_the_config_accepts_is_monotone(ladder: dict[str, str]) -> None:
    try:
        ReturnPolicyConfig(ladder=ladder)
    except ValueError:
        return
    ranks = [REFUND_STRICTNESS[ladder[level]] for level in LEVELS]
    assert ranks == sorted(ranks) and "deny_refund" not in ladder.values()


def test_rule_names_are_disjoint() -> None:
    assert not set(DENY_RULES) & set(REVIEW_RULES)
