"""Card payments: the raw schema, point-in-time payment features, label delay, and the generator."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from returnguard import payment_synth
from returnguard.events import InvalidEvent, envelope, parse
from returnguard.features import PAYMENT_FEATURE_NAMES, PAYMENT_FEATURES, FeatureError, validate_vector
from returnguard.payments import (
    FraudLabel,
    PaymentContext,
    PaymentStore,
    Transaction,
    fraud_rate,
    replay,
    stream_changes,
)

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DAY = 86_400_000
MINUTE = 60_000


def pay(
    n: int,
    t: int,
    customer: str = "C1",
    card: str = "fp1",
    terminal: str = "T1",
    amount: int = 5_000,
    channel: str = "pos",
) -> PaymentContext:
    return PaymentContext(f"X{n:05d}", customer, card, "M1", terminal, t, amount, channel)


def fraud(p: PaymentContext, labeled_at: int) -> FraudLabel:
    return FraudLabel(
        p.transaction_id, p.customer_id, p.card_fingerprint, p.merchant_id, p.terminal_id, labeled_at
    )


def test_spec_names_are_unique_and_described():
    assert len(set(PAYMENT_FEATURE_NAMES)) == len(PAYMENT_FEATURES)
    assert all(f.description[0].isupper() for f in PAYMENT_FEATURES)


def test_an_unseen_payment_gets_the_defaults_and_its_own_facts():
    vector = PaymentStore().features(pay(1, T0, amount=12_345, channel="online"))
    assert list(vector) == list(PAYMENT_FEATURE_NAMES)
    assert vector["payment_amount"] == 123.45 and vector["payment_card_not_present"] == 1.0
    assert vector["card_age_days"] == -1.0 and vector["card_is_new_for_customer"] == 1.0
    assert vector["terminal_fraud_rate_28d"] == fraud_rate(0, 0) == 0.01


def test_spend_windows_include_their_start_and_exclude_the_payment_itself():
    store = PaymentStore()
    store.apply(pay(1, T0, amount=1_000))
    store.apply(pay(2, T0 + DAY - 1, amount=2_000))
    at_day = store.features(pay(3, T0 + DAY, amount=3_000))
    assert at_day["customer_payments_1d"] == 2.0 and at_day["customer_spend_1d"] == 30.0
    assert store.features(pay(3, T0 + DAY + 1))["customer_payments_1d"] == 1.0
    assert at_day["customer_avg_payment_30d"] == 15.0
    assert at_day["amount_vs_customer_avg_30d"] == 3_000 * 2 / 3_000
    same_time = store.features(pay(4, T0 + DAY - 1))
    assert same_time["customer_payments_1d"] == 1.0  # a payment at the same millisecond is not before


def test_velocity_counts_the_burst_before_the_payment():
    store = PaymentStore()
    for i in range(4):
        store.apply(pay(i, T0 + i * MINUTE))
    vector = store.features(pay(9, T0 + 10 * MINUTE))
    assert vector["customer_payments_last_10m"] == 4.0  # [t - 10 min, t): the one at T0 is on the edge
    assert store.features(pay(9, T0 + 10 * MINUTE + 1))["customer_payments_last_10m"] == 3.0
    assert vector["card_payments_last_1h"] == 4.0 and vector["customer_payments_last_1h"] == 4.0


def test_a_new_card_is_new_until_after_its_first_payment():
    store = PaymentStore()
    store.apply(pay(1, T0, card="old"))
    first = pay(2, T0 + DAY, card="new")
    assert store.features(first)["card_is_new_for_customer"] == 1.0
    store.apply(first)
    later = store.features(pay(3, T0 + 2 * DAY, card="new"))
    assert later["card_is_new_for_customer"] == 0.0 and later["customer_distinct_cards"] == 2.0
    assert later["card_age_days"] == 1.0


def test_a_fraud_label_counts_only_from_the_day_after_it_became_known():
    # Given a fraud at a terminal on day 0, reported on day 5 at noon
    store = PaymentStore()
    first = pay(1, T0)
    store.apply(first)
    store.apply(fraud(first, T0 + 5 * DAY + DAY // 2))
    # Then a payment on day 5 (even after the report) does not see it, one on day 6 does
    on_day_5 = store.features(pay(2, T0 + 5 * DAY + DAY - 1))
    on_day_6 = store.features(pay(3, T0 + 6 * DAY))
    assert on_day_5["terminal_fraud_rate_7d"] == fraud_rate(0, 1)
    assert on_day_6["terminal_fraud_rate_7d"] == fraud_rate(1, 1)
    assert on_day_6["merchant_fraud_rate_28d"] == fraud_rate(1, 1)
    # and leaves the 7-day window 7 days after the report
    assert store.features(pay(4, T0 + 13 * DAY))["terminal_fraud_rate_7d"] == fraud_rate(0, 0)
    assert store.features(pay(4, T0 + 13 * DAY))["terminal_fraud_rate_28d"] == fraud_rate(1, 1)


events_strategy = st.lists(
    st.tuples(
        st.integers(0, 40 * DAY),
        st.sampled_from(["C1", "C2"]),
        st.sampled_from(["fp1", "fp2", "fp3"]),
        st.sampled_from(["T1", "T2"]),
        st.integers(1, 100_000),
        st.one_of(st.none(), st.integers(0, 30 * DAY)),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=60)
@given(events_strategy, st.randoms(use_true_random=False))
def test_aggregates_reach_the_same_state_in_any_order(history, shuffle):
    payments = [pay(i, t, c, fp, term, amount) for i, (t, c, fp, term, amount, _) in enumerate(history)]
    labels = [
        fraud(p, p.time_ms + delay)
        for p, (*_, delay) in zip(payments, history, strict=True)
        if delay is not None
    ]
    reference, walk = replay(payments, labels)
    vectors = [v for _, v in walk]
    events: list = [*payments, *labels]
    shuffle.shuffle(events)
    shuffled = PaymentStore()
    for event in events:
        shuffled.apply(event)
    assert json.dumps(shuffled.items, sort_keys=True) == json.dumps(reference.items, sort_keys=True)
    assert len(vectors) == len(payments)


@settings(max_examples=40)
@given(events_strategy)
def test_replay_sees_nothing_at_or_after_the_payment(history):
    # Given a history replayed in time order, each payment's vector equals the vector computed from a
    # store holding exactly the events strictly before it
    payments = [pay(i, t, c, fp, term, amount) for i, (t, c, fp, term, amount, _) in enumerate(history)]
    labels = [
        fraud(p, p.time_ms + delay)
        for p, (*_, delay) in zip(payments, history, strict=True)
        if delay is not None
    ]
    _, walk = replay(payments, labels)
    for payment, vector in walk:
        before = PaymentStore()
        for event in [*payments, *labels]:
            when = event.time_ms if isinstance(event, PaymentContext) else event.labeled_at_ms
            if when < payment.time_ms:
                before.apply(event)
        assert before.features(payment) == vector


def test_payment_event_with_its_label_changes_each_item_once():
    event = envelope(
        "payment",
        "pay-1",
        T0,
        {
            "transaction_id": "X1",
            "customer_id": "C1",
            "card_fingerprint": "fp1",
            "merchant_id": "M1",
            "terminal_id": "T1",
            "amount": 10.5,
            "currency": "EUR",
            "channel": "pos",
            "label": 1,
            "labeled_at": "2026-01-03T00:00:00Z",
        },
    )
    parsed, payload = parse(json.dumps(event))
    changes = stream_changes(parsed.time_ms, payload)
    assert sorted(k for k, _ in changes) == ["card#fp1", "merchant#M1", "payment_customer#C1", "terminal#T1"]
    terminal = dict(changes)["terminal#T1"](None)
    assert terminal["payments_by_day"] == {str(T0 // DAY): 1} and terminal["frauds_by_day"] == {
        str(T0 // DAY + 2): 1
    }


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"labeled_at": "2025-12-31T00:00:00Z"}, "labeled_at"),
        ({"label": None}, "label"),
        ({"channel": "fax"}, "channel"),
        ({"currency": "XYZ"}, "currency"),
        ({"amount": 0}, "amount"),
        ({"card_number": "4111111111111111"}, "card_number"),
    ],
)
def test_bad_payment_events_are_refused_naming_the_field(change, problem):
    payload = {
        "transaction_id": "X1",
        "customer_id": "C1",
        "card_fingerprint": "fp1",
        "merchant_id": "M1",
        "terminal_id": "T1",
        "amount": 10.5,
        "currency": "EUR",
        "channel": "pos",
        "label": 1,
        "labeled_at": "2026-01-03T00:00:00Z",
        **change,
    }
    with pytest.raises(InvalidEvent, match=problem):
        parse(json.dumps(envelope("payment", "pay-1", T0, payload)))


def test_a_label_event_counts_fraud_and_a_genuine_label_changes_nothing():
    base = {
        "transaction_id": "X1",
        "customer_id": "C1",
        "card_fingerprint": "fp1",
        "merchant_id": "M1",
        "terminal_id": "T1",
    }
    parsed, payload = parse(json.dumps(envelope("payment_label", "lab-1", T0, {**base, "label": 1})))
    assert sorted(k for k, _ in stream_changes(parsed.time_ms, payload)) == ["merchant#M1", "terminal#T1"]
    parsed, payload = parse(json.dumps(envelope("payment_label", "lab-2", T0, {**base, "label": 0})))
    assert stream_changes(parsed.time_ms, payload) == []


def test_transaction_schema_needs_zones_and_a_label_time_after_the_payment():
    good = {
        "transaction_id": "X1",
        "customer_id": "C1",
        "card_fingerprint": "fp1",
        "merchant_id": "M1",
        "terminal_id": "T1",
        "amount": 10.5,
        "currency": "EUR",
        "channel": "online",
        "transaction_time": "2026-01-02T10:00:00Z",
    }
    assert Transaction.model_validate(good).label is None
    with pytest.raises(ValidationError, match="time zone"):
        Transaction.model_validate({**good, "transaction_time": "2026-01-02T10:00:00"})
    with pytest.raises(ValidationError, match="before transaction_time"):
        Transaction.model_validate({**good, "label": 1, "labeled_at": "2026-01-01T00:00:00Z"})


def test_validate_vector_checks_against_the_payment_spec():
    vector = {f.name: f.default for f in PAYMENT_FEATURES}
    assert len(validate_vector(vector, PAYMENT_FEATURES)) == len(PAYMENT_FEATURES)
    with pytest.raises(FeatureError, match="unknown feature"):
        validate_vector(vector)  # the order spec
    del vector["card_age_days"]
    with pytest.raises(FeatureError, match="missing feature: card_age_days"):
        validate_vector(vector, PAYMENT_FEATURES)


@pytest.fixture(scope="module")
def generated():
    return payment_synth.generate(payment_synth.PaymentSynthConfig(customers=150, days=60, seed=5))


def test_generator_is_deterministic_and_fits_the_raw_schema(generated):
    again = payment_synth.generate(payment_synth.PaymentSynthConfig(customers=150, days=60, seed=5))
    assert generated.equals(again)
    for row in payment_synth.raw_frame(generated).head(50).to_dict("records"):
        record = {k: v for k, v in row.items() if not (v is None or v != v)}
        record["transaction_time"] = record["transaction_time"].isoformat()
        if "labeled_at" in record:
            record["labeled_at"], record["label"] = record["labeled_at"].isoformat(), int(record["label"])
        Transaction.model_validate(record)


def test_generator_fraud_is_behaviour_with_delayed_labels(generated):
    table = generated
    fraud = table[table.scenario != "genuine"]
    assert set(fraud.scenario) == {"terminal", "card", "takeover"}
    assert 0.005 < len(fraud) / len(table) < 0.06
    labelled = table[table.label == 1]
    assert set(labelled.scenario) <= {"terminal", "card", "takeover"}
    delay = (labelled.labeled_at - labelled.transaction_time).dt.total_seconds()
    assert delay.min() >= 3600 and delay.median() > 86_400  # hours to weeks, never at once
    end = table.transaction_time.max()
    known = fraud.label.notna()
    assert known[fraud.transaction_time < end - pd.Timedelta(days=30)].mean() > 0.95
    assert known[fraud.transaction_time > end - pd.Timedelta(days=2)].mean() < 0.6  # not reported yet
    # takeovers pay with a card the customer never used; card fraud goes online
    takeovers = fraud[fraud.scenario == "takeover"]
    genuine_cards = set(
        zip(
            table[table.scenario == "genuine"].customer_id,
            table[table.scenario == "genuine"].card_fingerprint,
            strict=True,
        )
    )
    assert not any(
        pair in genuine_cards for pair in zip(takeovers.customer_id, takeovers.card_fingerprint, strict=True)
    )
    assert (fraud[fraud.scenario.isin(["card", "takeover"])].channel == "online").all()
    # drift: fraud is more frequent in the second half of the period
    middle = table.transaction_time.min() + (end - table.transaction_time.min()) / 2
    rate = lambda part: (part.scenario != "genuine").mean()  # noqa: E731
    assert rate(table[table.transaction_time >= middle]) > rate(table[table.transaction_time < middle])
