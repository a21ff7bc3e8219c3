"""API-time velocity for payments: the payments the score function recorded (by customer and by card)
count in the velocity features, once each, before and after the stream has applied them; without a
record the vector is the aggregates' alone (the Spark/stream parity is untouched)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from returnguard.aws.feature_store import InMemoryFeatureStore
from returnguard.payment_scoring import decide_payment
from returnguard.payments import (
    PaymentContext,
    PaymentStore,
    card_velocity_key,
    compute_payment_features,
    customer_velocity_key,
    payment_keys,
)
from tests.unit.api.fakes import FakeModel
from tests.unit.payments.test_payment_scoring import NOW, POLICY, T, request


def payment(transaction_id: str, t: int, card: str = "fp_new") -> PaymentContext:
    return PaymentContext(transaction_id, "C1", card, "M1", "T1", t, 9_000, "online")


def states(store: PaymentStore, probe: PaymentContext) -> list:
    keys = payment_keys(probe)
    return [store.items.get(keys[e]) for e in ("payment_customer", "card", "terminal", "merchant")]


def test_recorded_payments_count_for_a_customer_and_card_the_stream_has_not_seen() -> None:
    recorded = {"X1": T - 2_000, "X2": T - 1_000}
    vector = compute_payment_features(payment("X3", T), None, None, None, None, recorded=(recorded, recorded))
    assert vector["customer_payments_last_10m"] == 2 and vector["customer_payments_last_1h"] == 2
    assert vector["card_payments_last_1h"] == 2
    assert vector["customer_payments_1d"] == 0  # only the velocity features move before the stream


def test_recorded_payments_at_or_after_the_payment_and_outside_the_windows_do_not_count() -> None:
    recorded = {"same-ms": T, "later": T + 1, "9m": T - 540_000, "11m": T - 660_000, "2h": T - 7_200_000}
    vector = compute_payment_features(payment("P", T), None, None, None, None, recorded=(recorded, {}))
    assert (vector["customer_payments_last_10m"], vector["customer_payments_last_1h"]) == (1, 2)
    assert vector["card_payments_last_1h"] == 0


@given(
    st.lists(st.integers(min_value=-3_700_000, max_value=-1), max_size=10),
    st.sets(st.integers(min_value=0, max_value=9)),
)
def test_counts_are_the_union_of_aggregate_and_record_by_transaction_id(offsets, recorded_too) -> None:
    # Given payments the stream applied, some of them also recorded by the API
    store = PaymentStore()
    contexts = [payment(f"P{i}", T + offset) for i, offset in enumerate(offsets)]
    for context in contexts:
        store.apply(context)
    recorded = {c.transaction_id: c.time_ms for i, c in enumerate(contexts) if i in recorded_too}
    probe = payment("probe", T)
    # Then the vector is the aggregates' alone: nothing is counted twice
    together = compute_payment_features(probe, *states(store, probe), recorded=(recorded, recorded))
    assert together == store.features(probe)


def test_decide_reads_the_records_in_the_same_batch_and_hands_them_back() -> None:
    store = InMemoryFeatureStore(
        {
            customer_velocity_key("C1"): {"pk": "x", "orders": {"A": T - 30_000}},
            card_velocity_key("fp_new"): {"pk": "y", "orders": {"A": T - 30_000, "B": T - 20_000}},
        }
    )
    decision = decide_payment(request(), store, FakeModel(0.1), POLICY, decision_id="d1", now=NOW)
    assert store.batch_calls == 1
    assert (
        decision.vector["customer_payments_last_10m"] == 1 and decision.vector["card_payments_last_1h"] == 2
    )
    assert "velocity" in decision.response.rules_triggered  # seed 002's rule: two within the window
    assert decision.response.recommended_action != "approve"
    assert decision.recorded == ({"A": T - 30_000}, {"A": T - 30_000, "B": T - 20_000})
