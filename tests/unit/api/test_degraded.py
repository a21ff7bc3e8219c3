"""Degraded decisions: the fallback model scores when the endpoint cannot, within the deployment's
degraded policy, and says why."""

from __future__ import annotations

import math

import pytest

from returnguard.aws.feature_store import InMemoryFeatureStore, blocklist_key
from returnguard.fallback import FallbackModel, FallbackModelError
from returnguard.policy import PolicyConfig
from returnguard.ports import ModelScore, ModelUnavailable, UnavailableReason
from returnguard.scoring import decide

from .fakes import DAY, T0, FakeModel, customer_with_history
from .test_scoring import CONFIG, NOW, request

FALLBACK_JSON = {
    "kind": "logistic_regression",
    "model_version": "v-test-fallback",
    "feature_names": ["customer_return_rate_last_6", "payment_is_cod"],
    "intercept": -3.0,
    "coefficients": [2.0, 0.5],
    "means": [0.1, 0.2],
    "scales": [0.2, 0.4],
    "thresholds": {"medium": 0.2, "high": 0.5, "critical": 0.8},
    "metrics": {"roc_auc": 0.8},
}
FALLBACK = FallbackModel.from_json(FALLBACK_JSON)


class DownModel:
    def __init__(self, reason: UnavailableReason):
        self.reason = reason

    def score(self, vector: dict[str, float]) -> ModelScore:
        raise ModelUnavailable("down", self.reason)


def abusive_store() -> InMemoryFeatureStore:
    return InMemoryFeatureStore(
        {"customer#C1": customer_with_history(orders=8, returned=6, last_order_ms=T0 - DAY)}
    )


def test_the_fallback_scores_exactly_a_logistic_regression() -> None:
    vector = {"customer_return_rate_last_6": 0.9, "payment_is_cod": 1.0, "order_amount": 5.0}
    result = FALLBACK.score(vector)
    z = -3.0 + 2.0 * (0.9 - 0.1) / 0.2 + 0.5 * (1.0 - 0.2) / 0.4
    assert result.score == pytest.approx(1 / (1 + math.exp(-z)), abs=1e-12)
    assert result.contributions == pytest.approx({"customer_return_rate_last_6": 8.0, "payment_is_cod": 1.0})
    assert FALLBACK.score({}).score == pytest.approx(1 / (1 + math.exp(3.0)))  # everything at its mean


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "xgboost"}, "kind"),
        ({"feature_names": ["no_such_feature", "payment_is_cod"]}, "no_such_feature"),
        ({"scales": [0.0, 1.0]}, "scales positive"),
        ({"coefficients": [1.0]}, "as long"),
        ({"thresholds": {"medium": 0.1}}, "thresholds"),
        ({"intercept": "x"}, "malformed"),
    ],
)
def test_an_unusable_fallback_is_refused_naming_the_problem(change, message) -> None:
    with pytest.raises(FallbackModelError, match=message):
        FallbackModel.from_json({**FALLBACK_JSON, **change})


@pytest.mark.parametrize("reason", ["model_timeout", "model_error", "circuit_open"])
def test_model_down_the_fallback_decides_and_the_reason_is_given(reason) -> None:
    d = decide(request(), abusive_store(), DownModel(reason), CONFIG, NOW, fallback=FALLBACK).response
    assert d.degraded and d.degraded_reason == reason
    assert d.model_version == "v-test-fallback" and d.risk_score is not None and d.risk_score > 0.5
    # the fallback's own thresholds decide (0.5 = high), explained by its exact contributions
    assert d.risk_level == "high" and d.recommended_action == "manual_review"
    assert any("returned 6 of the last 6 orders" in f for f in d.explanation.key_factors)


def test_abusive_history_is_not_approved_with_the_model_down_but_a_clean_one_is() -> None:
    up = decide(request(), abusive_store(), FakeModel(0.7), CONFIG, NOW).response
    down = decide(request(), abusive_store(), DownModel("model_error"), CONFIG, NOW, fallback=FALLBACK)
    assert up.recommended_action != "approve" and down.response.recommended_action != "approve"
    clean = InMemoryFeatureStore(
        {"customer#C1": customer_with_history(orders=8, returned=0, last_order_ms=T0 - DAY)}
    )
    calm = decide(request(), clean, DownModel("model_error"), CONFIG, NOW, fallback=FALLBACK).response
    assert calm.degraded and calm.recommended_action == "approve"


def test_the_degraded_policy_bounds_what_the_fallback_may_do() -> None:
    certain = FallbackModel.from_json({**FALLBACK_JSON, "intercept": 10.0})  # always above critical
    default = decide(request(), abusive_store(), DownModel("model_error"), CONFIG, NOW, fallback=certain)
    assert default.response.risk_level == "high"  # by default the fallback never blocks on its own
    strict = PolicyConfig(medium=0.3, high=0.6, critical=0.85, degraded_ceiling="critical")
    blocks = decide(request(), abusive_store(), DownModel("model_error"), strict, NOW, fallback=certain)
    assert blocks.response.recommended_action == "block"
    cautious = PolicyConfig(medium=0.3, high=0.6, critical=0.85, degraded_floor="medium")
    clean = InMemoryFeatureStore()
    stepped = decide(request(), clean, DownModel("model_error"), cautious, NOW, fallback=FALLBACK)
    assert stepped.response.recommended_action == "otp_verification"
    # the policy touches degraded decisions only
    assert decide(request(), clean, FakeModel(0.01), cautious, NOW).response.recommended_action == "approve"


def test_hard_rules_still_apply_when_degraded() -> None:
    store = InMemoryFeatureStore({blocklist_key("customer", "C1"): {"reason": "fraud"}})
    d = decide(request(), store, DownModel("circuit_open"), CONFIG, NOW, fallback=FALLBACK).response
    assert d.degraded and d.recommended_action == "block"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"degraded_floor": "severe"}, "degraded_floor must be one of"),
        ({"degraded_floor": "high", "degraded_ceiling": "medium"}, "not be above"),
    ],
)
def test_a_bad_degraded_policy_is_refused(overrides, message) -> None:
    with pytest.raises(ValueError, match=message):
        PolicyConfig.from_model_config(
            {"thresholds": {"medium": 0.3, "high": 0.6, "critical": 0.9}}, overrides
        )
