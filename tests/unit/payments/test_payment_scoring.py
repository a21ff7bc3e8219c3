"""Card-payment decisions: features from the payment items in one read, the policy path, actions,
explanations, degraded mode, and the payment lane of the one model archive (incl. seed 001's shape)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from returnguard.aws.feature_store import InMemoryFeatureStore, blocklist_key
from returnguard.features import PAYMENT_FEATURE_NAMES
from returnguard.payment_scoring import (
    PAYMENT_ACTIONS,
    PaymentRiskRequest,
    decide_payment,
    payment_policy,
    request_hash,
)
from returnguard.payments import PaymentContext, PaymentStore
from returnguard.policy import LEVELS
from tests.unit.api.fakes import FakeModel

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
T = int(NOW.timestamp() * 1000)
POLICY = payment_policy({"payment": {"thresholds": {"medium": 0.3, "high": 0.6, "critical": 0.85}}})


def request(**payment) -> PaymentRiskRequest:
    body = {
        "transaction_id": "X1",
        "customer_id": "C1",
        "card_fingerprint": "fp_new",
        "merchant_id": "M1",
        "terminal_id": "T1",
        "amount": 120.0,
        "currency": "EUR",
        "channel": "online",
        "transaction_time": NOW.isoformat(),
        **payment,
    }
    return PaymentRiskRequest.model_validate({"event_type": "payment", "payment": body})


def store_with_burst(payments: int = 4) -> InMemoryFeatureStore:
    """C1 paid with fp_old for weeks, then `payments` payments in the last few minutes."""
    reference = PaymentStore()
    for day in range(20, 0, -1):
        reference.apply(
            PaymentContext(f"H{day}", "C1", "fp_old", "M1", "T1", T - day * 86_400_000, 4_000, "pos")
        )
    for i in range(payments):
        reference.apply(
            PaymentContext(f"B{i}", "C1", "fp_new", "M1", "T1", T - (i + 1) * 60_000, 9_000, "online")
        )
    return InMemoryFeatureStore({key: {"pk": key, "state": state} for key, state in reference.items.items()})


def test_features_come_from_one_read_of_the_payment_items():
    store = store_with_burst()
    model = FakeModel(0.1)
    decision = decide_payment(request(), store, model, POLICY, decision_id="d1", now=NOW)
    assert store.batch_calls == 1
    vector = model.vectors[0]
    assert list(vector) == list(PAYMENT_FEATURE_NAMES)
    assert vector["customer_payments_last_10m"] == 4.0 and vector["card_payments_last_1h"] == 4.0
    assert vector["customer_distinct_cards"] == 2.0 and vector["card_is_new_for_customer"] == 0.0
    assert decision.vector == vector


@pytest.mark.parametrize(
    ("score", "level", "action"),
    [
        (0.1, "low", "approve"),
        (0.4, "medium", "step_up_authentication"),
        (0.7, "high", "review"),
        (0.9, "critical", "decline"),
    ],
)
def test_score_maps_to_a_payment_action(score, level, action):
    response = decide_payment(
        request(), InMemoryFeatureStore(), FakeModel(score), POLICY, decision_id="d", now=NOW
    ).response
    assert (response.risk_level, response.recommended_action) == (level, action)
    assert (
        response.transaction_id == "X1"
        and response.decision_id == "d"
        and response.model_version == "test-v1"
    )


@given(st.floats(0, 1), st.floats(0, 1))
def test_a_higher_score_never_gets_a_milder_action(a, b):
    low, high = sorted((a, b))
    order = list(PAYMENT_ACTIONS.values())
    actions = [
        decide_payment(
            request(), InMemoryFeatureStore(), FakeModel(s), POLICY, decision_id="d", now=NOW
        ).response.recommended_action
        for s in (low, high)
    ]
    assert order.index(actions[0]) <= order.index(actions[1])


def test_deployment_overrides_move_the_thresholds():
    strict = payment_policy(
        {"payment": {"thresholds": {"medium": 0.3, "high": 0.6, "critical": 0.85}}}, {"medium": 0.05}
    )
    response = decide_payment(
        request(), InMemoryFeatureStore(), FakeModel(0.1), strict, decision_id="d", now=NOW
    ).response
    assert response.recommended_action == "step_up_authentication"
    with pytest.raises(ValueError, match="unknown policy setting"):
        payment_policy({}, {"declines": 1})
    assert payment_policy({}).high == 0.6  # no payment model yet: the default levels


def test_hard_rules_only_raise_the_level():
    blocked = InMemoryFeatureStore({blocklist_key("card", "fp_new"): {"reason": "stolen"}})
    response = decide_payment(request(), blocked, FakeModel(0.01), POLICY, decision_id="d", now=NOW).response
    assert response.recommended_action == "decline" and response.rules_triggered == ["blocklisted"]
    big = decide_payment(
        request(amount=9_000.0, currency="USD"),
        InMemoryFeatureStore(),
        FakeModel(0.01),
        POLICY,
        decision_id="d",
        now=NOW,
    )
    assert big.response.recommended_action == "review" and "high_amount" in big.response.rules_triggered
    burst = decide_payment(request(), store_with_burst(4), FakeModel(0.01), POLICY, decision_id="d", now=NOW)
    assert "velocity" in burst.response.rules_triggered
    assert burst.response.recommended_action == "step_up_authentication"


def test_a_model_that_does_not_answer_never_approves():
    response = decide_payment(
        request(), InMemoryFeatureStore(), FakeModel(down=True), POLICY, decision_id="d", now=NOW
    ).response
    assert response.degraded and response.degraded_reason == "model_error"
    assert response.risk_score is None and response.recommended_action == "step_up_authentication"


def test_explanation_cites_present_risk_signals_in_business_language():
    contributions = {
        "card_payments_last_1h": 1.2,
        "terminal_fraud_rate_7d": 0.9,
        "payment_amount": 0.4,
        "customer_spend_30d": -0.2,
    }
    store = store_with_burst(4)
    response = decide_payment(
        request(), store, FakeModel(0.9, contributions), POLICY, decision_id="d", now=NOW
    ).response
    factors = response.explanation.key_factors
    assert "4 payments with this card in the previous hour" in factors
    # the terminal has no known fraud: its rate at the prior is not cited as a reason
    assert not any("terminal" in f for f in factors)
    assert response.explanation.recommendation == "Decline the payment."
    assert "fraud" not in response.customer_message.lower() and "velocity" not in response.customer_message
    approved = decide_payment(
        PaymentRiskRequest.model_validate({**request().model_dump(mode="json"), "locale": "hi"}),
        store_with_burst(0),
        FakeModel(0.05, {"amount_vs_customer_avg_30d": -0.5}),
        POLICY,
        decision_id="d",
        now=NOW,
    ).response
    assert approved.recommended_action == "approve" and approved.explanation.summary == "धोखाधड़ी का जोखिम कम।"
    assert approved.explanation.key_factors == ["राशि ग्राहक के 30-दिन के औसत की 3.0 गुना है"]


def test_request_is_strict_and_the_hash_ignores_a_defaulted_time():
    with pytest.raises(ValueError, match="card_number"):
        request(card_number="4111111111111111")
    with pytest.raises(ValueError, match="channel"):
        request(channel="fax")
    body = request().model_dump(mode="json")
    del body["payment"]["transaction_time"]
    first, retry = (
        PaymentRiskRequest.model_validate(body),
        PaymentRiskRequest.model_validate(json.loads(json.dumps(body))),
    )
    assert request_hash(first) == request_hash(retry)
    assert request_hash(request(amount=121.0)) != request_hash(request())


def test_every_level_has_an_action():
    assert set(PAYMENT_ACTIONS) == set(LEVELS)


def test_a_payment_is_mapped_with_the_thresholds_of_the_model_version_that_answered():
    promoted = payment_policy({"payment": {"thresholds": {"medium": 0.01, "high": 0.02, "critical": 0.05}}})
    asked: list[str] = []
    response = decide_payment(
        request(), InMemoryFeatureStore(), FakeModel(0.1), POLICY, decision_id="d", now=NOW,
        policy_for=lambda version: asked.append(version) or promoted,
    ).response  # fmt: skip
    assert asked == ["test-v1"] and response.recommended_action == "decline"  # 0.1: approve with POLICY
    down = decide_payment(
        request(), InMemoryFeatureStore(), FakeModel(down=True), POLICY, decision_id="d", now=NOW,
        policy_for=lambda version: asked.append(version) or promoted,
    ).response  # fmt: skip
    assert down.degraded and asked == ["test-v1"]  # no answer, no version to map with
