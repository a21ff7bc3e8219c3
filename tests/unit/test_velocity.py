"""API-time velocity: the orders the score function recorded count in the velocity features, once each,
before and after the stream has applied them, and the aggregate-only vector is unchanged."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from returnguard.aggregates import AggregateStore, apply_order_to_customer
from returnguard.aws.feature_store import InMemoryFeatureStore
from returnguard.features import compute_features, velocity_counts
from returnguard.policy import PolicyConfig
from returnguard.rules import online_flags
from returnguard.tables import recent_orders_key
from tests.unit.api.fakes import FakeModel, order_context
from tests.unit.api.test_scoring import NOW, request

T = 1_735_689_600_000  # 2025-01-01T00:00:00Z


def test_recorded_orders_count_for_a_customer_the_stream_has_not_seen() -> None:
    this = order_context("O3", T + 900)
    vector = compute_features(this, None, {}, {"O1": T, "O2": T + 400})
    assert vector["customer_orders_last_60s"] == 2 and vector["customer_orders_last_1h"] == 2
    assert vector["customer_order_count"] == 0  # only the velocity features move before the stream
    assert online_flags(10.0, vector["customer_orders_last_60s"], False, velocity_orders=3).velocity


def test_an_order_in_both_the_aggregate_and_the_record_counts_once() -> None:
    customer = None
    for n, t in enumerate((T, T + 400)):
        customer = apply_order_to_customer(customer, order_context(f"O{n + 1}", t))
    this = order_context("O3", T + 900)
    recorded = {"O1": T, "O2": T + 400}
    assert compute_features(this, customer, {}, recorded) == compute_features(this, customer, {})
    assert compute_features(this, customer, {}, {**recorded, "O9": T + 800})["customer_orders_last_60s"] == 3


def test_recorded_orders_at_or_after_the_order_and_outside_the_windows_do_not_count() -> None:
    recorded = {"same-ms": T, "later": T + 1, "59s": T - 59_000, "61s": T - 61_000, "2h": T - 7_200_000}
    assert velocity_counts(T, [], recorded) == (1, 2)


@given(
    st.lists(st.integers(min_value=-3_700_000, max_value=0), max_size=12),
    st.sets(st.integers(min_value=0, max_value=11)),
)
def test_counts_are_the_union_of_aggregate_and_record_by_order_id(offsets, recorded_too) -> None:
    # Given orders up to the probe's time (live scoring) the stream applied, some also recorded by the API
    store = AggregateStore()
    contexts = [order_context(f"O{i}", T + offset) for i, offset in enumerate(offsets)]
    for context in contexts:
        store.apply_order(context)
    recorded = {c.order_id: c.order_time_ms for i, c in enumerate(contexts) if i in recorded_too}
    probe = order_context("probe", T)
    # Then the vector is the one the aggregate alone gives: nothing is counted twice
    assert compute_features(
        probe, store.customers.get("C1"), store.entities_for(probe), recorded
    ) == store.features(probe)


def test_decide_reads_the_record_in_the_same_batch_and_hands_it_back() -> None:
    store = InMemoryFeatureStore({recent_orders_key("C1"): {"pk": "velocity#C1", "orders": {"A": 1, "B": 2}}})
    then = int(NOW.timestamp() * 1000)
    store.items[recent_orders_key("C1")]["orders"] = {"A": then - 500, "B": then - 300}
    decision = decide_one(store)
    assert store.batch_calls == 1
    assert (
        decision.vector["customer_orders_last_60s"] == 2 and "velocity" in decision.response.rules_triggered
    )
    assert decision.recent_orders == {"A": then - 500, "B": then - 300}


def decide_one(store: InMemoryFeatureStore):
    from returnguard.scoring import decide

    return decide(request(), store, FakeModel(0.1), PolicyConfig(medium=0.3, high=0.6, critical=0.85), NOW)
