import pytest
from hypothesis import given
from hypothesis import strategies as st

from returnguard.policy import ACTIONS, LEVELS, PolicyConfig, apply, level_for_score
from returnguard.rules import RuleFlags

CONFIG = PolicyConfig(medium=0.3, high=0.6, critical=0.85)
SEVERITY = {action: i for i, action in enumerate(ACTIONS.values())}


def test_levels_map_to_actions() -> None:
    assert [apply(s, RuleFlags(), CONFIG).recommended_action for s in (0.1, 0.3, 0.7, 0.9)] == [
        "approve",
        "otp_verification",
        "manual_review",
        "block",
    ]


def test_thresholds_from_model_config_with_override() -> None:
    cfg = PolicyConfig.from_model_config(
        {"thresholds": {"decision": 0.5, "medium": 0.2, "high": 0.5, "critical": 0.8}}, {"critical": 0.95}
    )
    assert (cfg.medium, cfg.high, cfg.critical) == (0.2, 0.5, 0.95)
    assert level_for_score(0.9, cfg) == "high"
    with pytest.raises(ValueError):
        PolicyConfig(medium=0.7, high=0.5, critical=0.9)


def test_a_deployment_overrides_the_velocity_count_and_nothing_unknown() -> None:
    model = {"thresholds": {"decision": 0.5, "medium": 0.2, "high": 0.5, "critical": 0.8}}
    assert PolicyConfig.from_model_config(model).velocity_orders == 2
    assert PolicyConfig.from_model_config(model, {"velocity_orders": 3}).velocity_orders == 3
    with pytest.raises(ValueError, match="unknown policy setting decision"):
        PolicyConfig.from_model_config(model, {"decision": 0.4})
    with pytest.raises(ValueError, match="whole number"):
        PolicyConfig.from_model_config(model, {"velocity_orders": 2.5})
    with pytest.raises(ValueError, match="between 2 and 100"):
        PolicyConfig.from_model_config(model, {"velocity_orders": 1})
    with pytest.raises(ValueError, match="medium <= high"):
        PolicyConfig.from_model_config(model, {"high": 0.9})  # above the model's critical


def test_hard_rules_raise_the_level() -> None:
    assert apply(0.0, RuleFlags(blocklisted=True), CONFIG).recommended_action == "block"
    high = apply(0.0, RuleFlags(high_amount=True), CONFIG)
    assert high.recommended_action == "manual_review"
    assert high.rules_triggered == ("high_amount",)
    assert apply(0.0, RuleFlags(velocity=True), CONFIG).recommended_action == "otp_verification"
    # rules never lower a model decision
    assert apply(0.9, RuleFlags(velocity=True), CONFIG).recommended_action == "block"


def test_degraded_mode_uses_rules_only() -> None:
    assert apply(None, RuleFlags(), CONFIG).risk_level == "low"
    assert apply(None, RuleFlags(high_amount=True, velocity=True), CONFIG).risk_level == "high"


def test_cod_hints() -> None:
    assert apply(0.7, RuleFlags(), CONFIG, cod_drives_risk=True).hints == ("prepaid_only",)
    assert apply(0.9, RuleFlags(), CONFIG, payment_is_cod=True, cod_refusals=2).hints == ("cod_disabled",)
    assert apply(0.1, RuleFlags(), CONFIG, cod_drives_risk=True).hints == ()
    assert apply(0.7, RuleFlags(), CONFIG).hints == ()


flags = st.builds(RuleFlags, blocklisted=st.booleans(), high_amount=st.booleans(), velocity=st.booleans())
unit = st.floats(min_value=0.0, max_value=1.0)


@given(a=unit, b=unit, f=flags)
def test_higher_score_never_milder(a: float, b: float, f: RuleFlags) -> None:
    low, high = sorted((a, b))
    lo, hi = apply(low, f, CONFIG), apply(high, f, CONFIG)
    assert SEVERITY[hi.recommended_action] >= SEVERITY[lo.recommended_action]
    assert LEVELS.index(hi.risk_level) >= LEVELS.index(lo.risk_level)
