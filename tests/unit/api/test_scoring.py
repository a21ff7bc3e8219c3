from datetime import datetime, timezone
from typing import Any

from returnguard.aws.feature_store import InMemoryFeatureStore, blocklist_key
from returnguard.policy import PolicyConfig
from returnguard.schemas import RiskScoreRequest
from returnguard.scoring import decide, decision_id

from .fakes import ADDRESS, T0, FakeModel, address_of, customer_with_history

CONFIG = PolicyConfig(medium=0.3, high=0.6, critical=0.85)
NOW = datetime.fromtimestamp(T0 / 1000, tz=timezone.utc)


def request(**order: Any) -> RiskScoreRequest:
    body = {
        "order_id": "ORD1",
        "customer_id": "C1",
        "product_id": "P1",
        "seller_id": "S1",
        "category": "electronics",
        "region": "KA",
        "amount": 1000.0,
        "currency": "INR",
        "payment_method": "card",
        "delivery_address": ADDRESS,
        "order_time": NOW.isoformat(),
    }
    body.update(order)
    return RiskScoreRequest.model_validate({"event_type": "order", "order": body})


def test_unseen_customer_one_batch_read_and_new_customer_wording() -> None:
    store = InMemoryFeatureStore()
    model = FakeModel(0.2, {"customer_account_age_days": 0.5, "customer_order_count": 0.3})
    d = decide(request(), store, model, CONFIG, NOW).response
    assert store.batch_calls == 1
    assert d.risk_level == "low" and d.recommended_action == "approve" and not d.degraded
    assert d.explanation.key_factors == ["New customer: no order history"]
    assert d.model_version == "test-v1" and d.risk_score == 0.2
    assert d.decision_id == decision_id("order", "ORD1") != decision_id("return", "ORD1")
    assert model.vectors[0]["customer_order_count"] == 0


def test_known_customer_history_reaches_the_model_and_the_explanation() -> None:
    state = customer_with_history(orders=8, returned=4, last_order_ms=T0 - 86_400_000)
    store = InMemoryFeatureStore({"customer#C1": {"pk": "customer#C1", "state": state, "version": 1}})
    model = FakeModel(0.7, {"customer_returns_last_6_orders": 0.9})
    d = decide(request(), store, model, CONFIG, NOW).response
    assert model.vectors[0]["customer_returns_last_6_orders"] == 4
    assert d.explanation.key_factors == ["Customer returned 4 of the last 6 orders (67%)"]
    assert d.recommended_action == "manual_review"


def test_blocklisted_address_blocks_even_at_low_score() -> None:
    store = InMemoryFeatureStore({blocklist_key("address", address_of()): {"reason": "fraud"}})
    d = decide(request(), store, FakeModel(0.01), CONFIG, NOW).response
    assert d.recommended_action == "block" and d.rules_triggered == ["blocklisted"]
    card = InMemoryFeatureStore({blocklist_key("card", "fp9"): {}})
    assert (
        decide(request(card_fingerprint="fp9"), card, FakeModel(0.01), CONFIG, NOW).response.risk_level
        == "critical"
    )


def test_high_amount_in_inr_is_converted() -> None:
    small = decide(request(amount=400_000.0), InMemoryFeatureStore(), FakeModel(0.01), CONFIG, NOW).response
    big = decide(request(amount=500_000.0), InMemoryFeatureStore(), FakeModel(0.01), CONFIG, NOW).response
    assert small.rules_triggered == [] and small.recommended_action == "approve"  # ~4,800 USD
    assert big.rules_triggered == ["high_amount"] and big.recommended_action == "manual_review"


def test_velocity_needs_otp() -> None:
    state = customer_with_history(orders=3, returned=0, last_order_ms=T0 - 30_000)
    store = InMemoryFeatureStore({"customer#C1": {"state": state}})
    d = decide(request(), store, FakeModel(0.05), CONFIG, NOW).response
    assert d.rules_triggered == ["velocity"] and d.recommended_action == "otp_verification"


def test_model_down_without_a_fallback_gives_a_rules_only_decision_never_an_approval() -> None:
    d = decide(request(amount=600_000.0), InMemoryFeatureStore(), FakeModel(down=True), CONFIG, NOW).response
    assert d.degraded and d.risk_score is None and d.model_version == "rules-only"
    assert d.degraded_reason == "model_error"
    assert d.recommended_action == "manual_review" and d.confidence == 1.0
    calm = decide(request(), InMemoryFeatureStore(), FakeModel(down=True), CONFIG, NOW).response
    # nothing scored this order: step-up verification, not a blind approval
    assert calm.degraded and calm.recommended_action == "otp_verification" and calm.confidence == 0.0


def test_cod_refusals_on_cod_order_hint_prepaid() -> None:
    d = decide(
        request(payment_method="cod"),
        InMemoryFeatureStore(),
        FakeModel(0.7, {"payment_is_cod": 0.6}),
        CONFIG,
        NOW,
    ).response
    assert "prepaid" in d.explanation.recommendation.lower()


def test_schema_rejects_extras_and_bad_values() -> None:
    import pytest
    from pydantic import ValidationError

    for bad in ({"amount": 0}, {"currency": "inr"}, {"payment_method": "cash"}, {"surprise": 1}):
        with pytest.raises(ValidationError) as info:
            request(**bad)
        assert info.value.errors()[0]["loc"][-1] == next(iter(bad))
    naive = request(order_time="2024-01-01T10:00:00")
    assert naive.order.order_time.tzinfo is not None and naive.locale == "en"


def test_link_identifiers_are_read_in_the_same_batch_and_counted() -> None:
    # Given a device, a phone and a network two other customers used before this order
    earlier = {"C7": T0 - 86_400_000, "C8": T0 - 3_600_000, "C1": T0 - 7_200_000}
    link = {"customers": earlier, "last_event_ms": T0 - 3_600_000}
    store = InMemoryFeatureStore(
        {
            f"{group}#{value}": {"state": link}
            for group, value in (("device", "d1"), ("phone", "p1"), ("ip", "n1"))
        }
    )
    model = FakeModel(0.2)
    # When an order carries them (and one without them)
    decide(request(device_id="d1", phone_hash="p1", ip_prefix="n1"), store, model, CONFIG, NOW)
    decide(request(order_id="ORD2"), store, model, CONFIG, NOW)
    # Then one BatchGetItem per decision read them, and only the other customers count
    assert store.batch_calls == 2
    for group in ("device", "phone", "ip"):
        assert model.vectors[0][f"{group}_other_customers"] == 2
        assert model.vectors[1][f"{group}_other_customers"] == 0


def test_the_customers_seller_and_category_items_are_read_in_the_same_batch() -> None:
    from returnguard.features import pair_key

    # Given C1's history with seller S1 (3 orders, 2 claims) and in electronics (4 orders, 3 returned)
    pairs = {
        f"customer_seller#{pair_key('C1', 'S1')}": {"order_count": 3, "return_count": 2, "claim_count": 2},
        f"customer_category#{pair_key('C1', 'electronics')}": {"order_count": 4, "return_count": 3},
    }
    store = InMemoryFeatureStore({pk: {"state": state} for pk, state in pairs.items()})
    model = FakeModel(0.2)
    # When C1 orders from S1 in electronics, and another customer does
    decide(request(), store, model, CONFIG, NOW)
    decide(request(order_id="ORD2", customer_id="C2"), store, model, CONFIG, NOW)
    # Then one BatchGetItem per decision read them, and they count for C1 only
    assert store.batch_calls == 2
    mine, other = model.vectors
    assert (mine["customer_seller_orders"], mine["customer_seller_claims"]) == (3, 2)
    assert (mine["customer_category_returns"], mine["customer_category_return_rate"]) == (3, 0.75)
    assert other["customer_seller_orders"] == other["customer_category_returns"] == 0
