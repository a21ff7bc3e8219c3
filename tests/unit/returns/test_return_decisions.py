"""decide_return: the store's facts, the model's score, the rules and the ladder make one decision."""

from __future__ import annotations

import pytest

from returnguard.aws.feature_store import InMemoryFeatureStore
from returnguard.console import needs_person
from returnguard.fallback import FallbackModel
from returnguard.features import RETURN_FEATURE_NAMES
from returnguard.order_record import order_record_key
from returnguard.returns_policy import REFUND_STRICTNESS, ReturnPolicyConfig
from returnguard.returns_scoring import decide_return
from returnguard.schemas import RefundAction, ReturnScoreRequest
from tests.unit.api.fakes import FakeModel
from tests.unit.returns.requests import body, return_fallback

CONFIG = ReturnPolicyConfig()


def request(**changes) -> ReturnScoreRequest:
    return ReturnScoreRequest.model_validate(body(**changes))


def test_the_model_scores_the_declared_return_features_and_the_ladder_acts() -> None:
    contributions = {"days_since_delivery": 0.9, "reason_text_contradicts_code": 0.4, "refund_ratio": 0.3}
    model = FakeModel(0.7, contributions)
    decision = decide_return(request(), InMemoryFeatureStore(), model, CONFIG)
    assert list(model.vectors[0]) == list(RETURN_FEATURE_NAMES)
    response = decision.response
    assert (response.return_id, response.order_id) == ("R1", "O1")
    assert (response.risk_level, response.recommended_action, response.review_required) == (
        "high",
        "photo_or_video_proof",
        False,
    )
    assert response.rules_triggered == [] and not response.degraded
    # the request's real values; a flag that is off and a ratio at its default are no reasons for risk
    assert response.explanation.key_factors == [
        "New customer: no order history",
        "Return requested 6 day(s) after delivery",
    ]
    assert response.decision_id.startswith("dec_")


def test_a_low_score_is_an_instant_refund_with_reassuring_factors() -> None:
    decision = decide_return(
        request(), InMemoryFeatureStore(), FakeModel(0.05, {"damaged_flag": -0.5}), CONFIG
    )
    assert decision.response.recommended_action == "instant_refund"
    assert decision.response.customer_message == "Your refund has been approved."
    assert "No damage claimed" in decision.response.explanation.key_factors


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"refund_amount": 2500.0}, "refund_exceeds_paid"),
        ({"delivered_at": None}, "not_delivered"),
        ({"return_date": "2025-03-01T00:00:00Z"}, "outside_return_window"),
    ],
)
def test_a_hard_rule_denies_and_a_person_confirms(changes, rule) -> None:
    response = decide_return(request(**changes), InMemoryFeatureStore(), FakeModel(0.01), CONFIG).response
    assert (response.recommended_action, response.risk_level, response.review_required) == (
        "deny_refund",
        "critical",
        True,
    )
    assert response.rules_triggered == [rule]
    assert response.confidence == 1.0
    assert response.customer_message == "Your return is being reviewed. We will update you shortly."
    assert needs_person(response.recommended_action)  # the review console queues it


def test_the_store_knows_what_was_paid_and_what_went_back() -> None:
    store = InMemoryFeatureStore(
        {
            order_record_key("O1"): {
                "pk": order_record_key("O1"),
                "customer_id": "C1",
                "product_id": "P1",
                "amount_minor": 150_000,  # 1,500 INR paid, though the request says 1,999
                "currency": "INR",
                "order_time_ms": 1_735_689_600_000,
                "returned": {"R0": "P1"},
            },
            "blocklist_customer#C9": {"pk": "blocklist_customer#C9"},
        }
    )
    response = decide_return(request(), store, FakeModel(0.01), CONFIG).response
    assert response.rules_triggered == ["refund_exceeds_paid", "already_returned"]
    # the same return retried is not "already returned"; another customer's order goes to a person
    store.items[order_record_key("O1")]["returned"] = {"R1": "P1"}
    store.items[order_record_key("O1")]["amount_minor"] = 199_900
    assert decide_return(request(), store, FakeModel(0.01), CONFIG).response.rules_triggered == []
    other = decide_return(request(customer_id="C9"), store, FakeModel(0.01), CONFIG).response
    assert other.rules_triggered == ["blocklisted", "order_customer_mismatch"]


def test_no_model_answer_is_degraded_and_never_an_instant_refund() -> None:
    response = decide_return(request(), InMemoryFeatureStore(), FakeModel(down=True), CONFIG).response
    assert response.degraded and response.degraded_reason == "model_error"
    assert response.risk_score is None and response.recommended_action == "refund_after_pickup_inspection"


@pytest.mark.parametrize(
    ("intercept", "action"), [(-8.0, "refund_after_pickup_inspection"), (8.0, "manual_review")]
)
def test_the_return_fallback_scores_when_the_model_cannot_and_never_refunds_instantly(
    intercept, action
) -> None:
    fallback = FallbackModel.from_json(return_fallback(intercept))
    response = decide_return(
        request(), InMemoryFeatureStore(), FakeModel(down=True), CONFIG, fallback=fallback
    ).response
    assert response.degraded and response.degraded_reason == "model_error"
    assert response.model_version == "return-test-1-fallback" and response.risk_score is not None
    # a low fallback score is still checked before the refund (the floor); a high one goes to a person
    assert response.recommended_action == action
    # the return model answering: the fallback is not asked
    answered = decide_return(request(), InMemoryFeatureStore(), FakeModel(0.05), CONFIG, fallback=fallback)
    assert answered.response.model_version == "test-v1" and not answered.response.degraded


def test_hindi_explanations_speak_hindi() -> None:
    model = FakeModel(0.9, {"days_since_delivery": 0.9, "reason_size_fit": 0.5})
    response = decide_return(request(locale="hi"), InMemoryFeatureStore(), model, CONFIG).response
    assert response.explanation.summary.startswith("गंभीर जोखिम")
    assert response.explanation.recommendation == "रिफंड को मैन्युअल समीक्षा के लिए रोकें।"
    assert response.explanation.key_factors == [
        "नया ग्राहक: कोई ऑर्डर इतिहास नहीं",
        "डिलीवरी के 6 दिन बाद रिटर्न का अनुरोध",
        "रिटर्न का कारण: साइज़/फिटिंग",
    ]


def test_the_schema_lists_the_ladders_actions() -> None:
    assert set(RefundAction.__args__) == set(REFUND_STRICTNESS)


def test_every_return_feature_has_business_language() -> None:
    from returnguard.returns_explain import TEMPLATES

    assert set(TEMPLATES) == set(RETURN_FEATURE_NAMES)


def test_a_return_is_mapped_with_the_ladder_of_the_model_version_that_answered() -> None:
    promoted = ReturnPolicyConfig.from_settings({"medium": 0.001, "high": 0.002, "critical": 0.003})
    asked: list[str] = []
    response = decide_return(
        request(), InMemoryFeatureStore(), FakeModel(0.05), CONFIG,
        policy_for=lambda version: asked.append(version) or promoted,
    ).response  # fmt: skip
    assert asked == ["test-v1"] and response.risk_level == "critical"  # 0.05: low with CONFIG
    assert (
        decide_return(request(), InMemoryFeatureStore(), FakeModel(0.05), CONFIG).response.risk_level == "low"
    )
