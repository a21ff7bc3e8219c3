"""Card payments: the raw transaction schema, the payment aggregates and the online feature function.

A raw card transaction (docs/payments.md, "Raw card transactions"; the lake's `raw/payments/`, the
`payment` stream event and the API's `payment` object all carry these fields):

    transaction_id     unique id of the transaction
    customer_id        the account holder
    card_fingerprint   a stable, non-reversible token of the card number (never the number)
    merchant_id        the merchant the payment went to
    terminal_id        the merchant's terminal (a POS device, an online checkout)
    amount, currency   amount in major units with at most two decimals; ISO 4217 code
    transaction_time   when it happened (UTC)
    channel            "pos" (card present), "online" (card not present) or "atm"
    label, labeled_at  optional: 1 = confirmed fraud, 0 = confirmed genuine, and when that became
                       known (a chargeback arrives days or weeks after the payment)

Aggregates (plain JSON-able dicts, like returnguard.aggregates) per entity in the `features` table:

    payment_customer#<id>  recent:  [[time_ms, transaction_id, amount_minor], ...] sorted, every
                                    payment within 30 days of last_event_ms
                           cards:   {card_fingerprint: first time the customer paid with it}
                           last_event_ms
    card#<fingerprint>     first_ms: the card's first payment; recent: as above, within 24 hours
                           last_event_ms
    terminal#<id>,         payments_by_day: {UTC day number: payments that day}
    merchant#<id>          frauds_by_day:   {UTC day number: fraud labels that became known that day}
                           both keep the TERMINAL_WINDOWS_DAYS[-1] days before last_event_ms's day
                           last_event_ms: latest payment or fraud label applied

Each `apply_*` is order-independent (counts, sums, minima, and time-sorted lists pruned against the
latest time), so the stream can apply late events in any order and reach the Spark job's state.
A feature of a payment at time t uses only what happened strictly before t: the customer and card
windows are [t - W, t) in milliseconds; terminal and merchant rates use whole UTC days before t's
day, and a fraud label counts from the day it became known (labeled_at), never from the day of the
payment it labels: that is the label delay the model will live with when serving.

Pure Python, no I/O: the Spark job (glue_jobs/payment_features.py), the stream and the score
function all test against `replay` here.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator, model_validator

from returnguard.calendar import DAY_MS
from returnguard.currency import CURRENCIES
from returnguard.features import (
    CARD_WINDOW_MS,
    FRAUD_PRIOR_FRAUDS,
    FRAUD_PRIOR_PAYMENTS,
    PAYMENT_FEATURES,
    PAYMENT_SPEND_WINDOWS_DAYS,
    PAYMENT_VELOCITY_MS,
    TERMINAL_WINDOWS_DAYS,
    amount_to_minor,
)
from returnguard.tables import entity_key

Aggregate = dict[str, Any]
Channel = Literal["pos", "online", "atm"]
CHANNELS: tuple[str, ...] = ("pos", "online", "atm")
CUSTOMER_WINDOW_MS = PAYMENT_SPEND_WINDOWS_DAYS[-1] * DAY_MS
TERMINAL_DAYS = TERMINAL_WINDOWS_DAYS[-1]
# the features table's entity names (entity#id keys)
CUSTOMER_ENTITY, CARD_ENTITY, TERMINAL_ENTITY, MERCHANT_ENTITY = (
    "payment_customer",
    "card",
    "terminal",
    "merchant",
)

_ID = Annotated[str, Strict(), Field(min_length=1, max_length=128, pattern=r"\S")]


class _Facts(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    transaction_id: _ID
    customer_id: _ID
    card_fingerprint: _ID
    merchant_id: _ID
    terminal_id: _ID


class PaymentPayload(_Facts):
    """A raw card transaction without its time: the `payment` stream event's payload (the envelope's
    event_time is the transaction time). Unknown fields are refused."""

    amount: Annotated[float, Strict()] = Field(gt=0, le=1e9, allow_inf_nan=False)
    currency: Annotated[str, Strict()] = Field(json_schema_extra={"enum": list(CURRENCIES)})
    channel: Channel
    label: Literal[0, 1] | None = None
    labeled_at: datetime | None = None

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        if value not in CURRENCIES:
            raise ValueError(f"must be one of {', '.join(CURRENCIES)}")
        return value

    @field_validator("labeled_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _utc(value)

    @model_validator(mode="after")
    def _label_with_time(self) -> PaymentPayload:
        if (self.label is None) != (self.labeled_at is None):
            raise ValueError("label and labeled_at come together (both or neither)")
        return self


class PaymentLabelPayload(_Facts):
    """The `payment_label` stream event: a payment's label became known at the envelope's event_time
    (only label 1, fraud, changes an aggregate)."""

    label: Literal[0, 1]


class Transaction(PaymentPayload):
    """One raw card transaction, as a file or the lake holds it."""

    transaction_time: datetime

    @field_validator("transaction_time")
    @classmethod
    def _aware_time(cls, value: datetime) -> datetime:
        return _utc(value)

    @model_validator(mode="after")
    def _labelled_after(self) -> Transaction:
        if self.labeled_at is not None and self.labeled_at < self.transaction_time:
            raise ValueError("labeled_at is before transaction_time")
        return self


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("needs a time zone (e.g. 2026-11-25T10:00:00Z)")
    return value.astimezone(timezone.utc)


# the raw schema's columns, in the lake's order
TRANSACTION_FIELDS: tuple[str, ...] = (
    "transaction_id",
    "customer_id",
    "card_fingerprint",
    "merchant_id",
    "terminal_id",
    "amount",
    "currency",
    "transaction_time",
    "channel",
    "label",
    "labeled_at",
)


@dataclass(frozen=True)
class PaymentContext:
    """What the payment features need to know about the payment being scored."""

    transaction_id: str
    customer_id: str
    card_fingerprint: str
    merchant_id: str
    terminal_id: str
    time_ms: int
    amount_minor: int
    channel: str


@dataclass(frozen=True)
class FraudLabel:
    """A fraud label that became known at `labeled_at_ms`, with the entities its payment touched."""

    transaction_id: str
    customer_id: str
    card_fingerprint: str
    merchant_id: str
    terminal_id: str
    labeled_at_ms: int


def to_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def context_of(transaction: Transaction) -> PaymentContext:
    return PaymentContext(
        transaction_id=transaction.transaction_id,
        customer_id=transaction.customer_id,
        card_fingerprint=transaction.card_fingerprint,
        merchant_id=transaction.merchant_id,
        terminal_id=transaction.terminal_id,
        time_ms=to_ms(transaction.transaction_time),
        amount_minor=amount_to_minor(transaction.amount),
        channel=transaction.channel,
    )


def fraud_label_of(transaction: Transaction) -> FraudLabel | None:
    """The fraud label a transaction carries, or None (no label, or labelled genuine: only known fraud
    is counted)."""
    if transaction.label != 1 or transaction.labeled_at is None:
        return None
    return FraudLabel(
        transaction_id=transaction.transaction_id,
        customer_id=transaction.customer_id,
        card_fingerprint=transaction.card_fingerprint,
        merchant_id=transaction.merchant_id,
        terminal_id=transaction.terminal_id,
        labeled_at_ms=to_ms(transaction.labeled_at),
    )


def stream_events(
    time_ms: int, payload: PaymentPayload | PaymentLabelPayload
) -> list[PaymentContext | FraudLabel]:
    """What a `payment` or `payment_label` stream event applies: the payment (and its fraud label when
    it came with one), or the fraud label alone."""
    facts = payload.model_dump(
        include={"transaction_id", "customer_id", "card_fingerprint", "merchant_id", "terminal_id"}
    )
    if isinstance(payload, PaymentLabelPayload):
        return [FraudLabel(**facts, labeled_at_ms=time_ms)] if payload.label == 1 else []
    out: list[PaymentContext | FraudLabel] = [
        PaymentContext(
            **facts, time_ms=time_ms, amount_minor=amount_to_minor(payload.amount), channel=payload.channel
        )
    ]
    if payload.label == 1 and payload.labeled_at is not None:
        out.append(FraudLabel(**facts, labeled_at_ms=to_ms(payload.labeled_at)))
    return out


# --- aggregates ---------------------------------------------------------------------------------------


def new_customer() -> Aggregate:
    return {"recent": [], "cards": {}, "last_event_ms": 0}


def new_card() -> Aggregate:
    return {"first_ms": None, "recent": [], "last_event_ms": 0}


def new_point() -> Aggregate:
    """A terminal or merchant: payments and known frauds per UTC day."""
    return {"payments_by_day": {}, "frauds_by_day": {}, "last_event_ms": 0}


def _add_recent(state: Aggregate, payment: PaymentContext, keep_ms: int) -> None:
    state["recent"].append([payment.time_ms, payment.transaction_id, payment.amount_minor])
    state["recent"].sort(key=lambda r: (int(r[0]), str(r[1])))
    state["last_event_ms"] = max(int(state["last_event_ms"]), payment.time_ms)
    last = int(state["last_event_ms"])
    state["recent"] = [r for r in state["recent"] if int(r[0]) >= last - keep_ms]


def apply_payment_to_customer(customer: Aggregate | None, payment: PaymentContext) -> Aggregate:
    state = new_customer() if customer is None else customer
    first = state["cards"].get(payment.card_fingerprint)
    if first is None or payment.time_ms < int(first):
        state["cards"][payment.card_fingerprint] = payment.time_ms
    _add_recent(state, payment, CUSTOMER_WINDOW_MS)
    return state


def apply_payment_to_card(card: Aggregate | None, payment: PaymentContext) -> Aggregate:
    state = new_card() if card is None else card
    if state["first_ms"] is None or payment.time_ms < int(state["first_ms"]):
        state["first_ms"] = payment.time_ms
    _add_recent(state, payment, CARD_WINDOW_MS)
    return state


def _prune_days(state: Aggregate) -> None:
    oldest = int(state["last_event_ms"]) // DAY_MS - TERMINAL_DAYS
    for name in ("payments_by_day", "frauds_by_day"):
        state[name] = {day: n for day, n in state[name].items() if int(day) >= oldest}


def _count_day(state: Aggregate, name: str, time_ms: int) -> Aggregate:
    day = str(time_ms // DAY_MS)
    state[name][day] = int(state[name].get(day, 0)) + 1
    state["last_event_ms"] = max(int(state["last_event_ms"]), time_ms)
    _prune_days(state)
    return state


def apply_payment_to_point(point: Aggregate | None, time_ms: int) -> Aggregate:
    return _count_day(new_point() if point is None else point, "payments_by_day", time_ms)


def apply_fraud_to_point(point: Aggregate | None, labeled_at_ms: int) -> Aggregate:
    return _count_day(new_point() if point is None else point, "frauds_by_day", labeled_at_ms)


def payment_keys(payment: PaymentContext | FraudLabel) -> dict[str, str]:
    """The `features` table keys of the items a payment reads and writes: entity -> key."""
    return {
        CUSTOMER_ENTITY: entity_key(CUSTOMER_ENTITY, payment.customer_id),
        CARD_ENTITY: entity_key(CARD_ENTITY, payment.card_fingerprint),
        TERMINAL_ENTITY: entity_key(TERMINAL_ENTITY, payment.terminal_id),
        MERCHANT_ENTITY: entity_key(MERCHANT_ENTITY, payment.merchant_id),
    }


def payment_changes(event: PaymentContext | FraudLabel) -> list[tuple[str, Any]]:
    """(features-table key, how the event changes that item): what the stream applies."""
    keys = payment_keys(event)
    if isinstance(event, FraudLabel):
        t = event.labeled_at_ms
        return [(keys[e], lambda s: apply_fraud_to_point(s, t)) for e in (TERMINAL_ENTITY, MERCHANT_ENTITY)]
    payment = event
    return [
        (keys[CUSTOMER_ENTITY], lambda s: apply_payment_to_customer(s, payment)),
        (keys[CARD_ENTITY], lambda s: apply_payment_to_card(s, payment)),
        (keys[TERMINAL_ENTITY], lambda s: apply_payment_to_point(s, payment.time_ms)),
        (keys[MERCHANT_ENTITY], lambda s: apply_payment_to_point(s, payment.time_ms)),
    ]


def stream_changes(time_ms: int, payload: PaymentPayload | PaymentLabelPayload) -> list[tuple[str, Any]]:
    """One change per item for a whole stream event: a payment that comes with its fraud label touches
    its terminal and merchant twice, and the stream applies a record to an item once (its position)."""
    by_key: dict[str, list[Any]] = {}
    for event in stream_events(time_ms, payload):
        for key, change in payment_changes(event):
            by_key.setdefault(key, []).append(change)

    def composed(changes: list[Any]) -> Any:
        def apply(state: Aggregate | None) -> Aggregate:
            for change in changes:
                state = change(state)
            assert state is not None
            return state

        return apply

    return [(key, composed(changes)) for key, changes in by_key.items()]


# --- the online feature function ------------------------------------------------------------------------


def _window(recent: Iterable[Any], t: int, width_ms: int) -> tuple[int, int]:
    """(payments, amount sum in minor units) in [t - width, t)."""
    rows = [r for r in recent if t - width_ms <= int(r[0]) < t]
    return len(rows), sum(int(r[2]) for r in rows)


def _days(by_day: Mapping[str, Any], day: int, days: int) -> int:
    """Sum over the `days` whole UTC days before `day`."""
    return sum(int(n) for d, n in by_day.items() if day - days <= int(d) < day)


def _recorded_window(recent: Iterable[Any], recorded: Mapping[str, int], t: int, width_ms: int) -> int:
    """Payments in [t - width, t) over an aggregate's recent list and the ones the API recorded
    ({transaction id: time ms}), each transaction id counted once: a payment the stream has applied
    since the API recorded it is in both, and counts one."""
    times = {str(r[1]): int(r[0]) for r in recent}
    for transaction_id, time_ms in recorded.items():
        times.setdefault(str(transaction_id), int(time_ms))
    return sum(1 for time_ms in times.values() if t - width_ms <= time_ms < t)


def fraud_rate(frauds: int, payments: int) -> float:
    return (frauds + FRAUD_PRIOR_FRAUDS) / (payments + FRAUD_PRIOR_PAYMENTS)


def compute_payment_features(
    payment: PaymentContext,
    customer: Mapping[str, Any] | None,
    card: Mapping[str, Any] | None,
    terminal: Mapping[str, Any] | None,
    merchant: Mapping[str, Any] | None,
    *,
    recorded: tuple[Mapping[str, int], Mapping[str, int]] | None = None,
) -> dict[str, float]:
    """The feature vector of one payment, in PAYMENT_FEATURE_NAMES order, from its aggregates (None:
    never seen). Aggregates may hold events at or after the payment's time (the stream moves on);
    those are left out, so the vector reflects only what was known strictly before it, as long as
    the payment is not older than the aggregates' windows (always so when scoring live).

    `recorded`: the customer's and the card's payments as the score function recorded them when it
    scored them ({transaction id: time ms}; returnguard/aws/recent_orders.py), which the stream may
    not have applied yet. They count in the velocity features (customer_payments_last_10m and _1h,
    card_payments_last_1h), each transaction once whether the API, the stream or both know it."""
    t = payment.time_ms
    vector: dict[str, float] = {f.name: f.default for f in PAYMENT_FEATURES}
    vector["payment_amount"] = payment.amount_minor / 100
    vector["payment_card_not_present"] = 1.0 if payment.channel == "online" else 0.0

    if customer is not None:
        recent = customer.get("recent", ())
        for days in PAYMENT_SPEND_WINDOWS_DAYS:
            count, spend = _window(recent, t, days * DAY_MS)
            vector[f"customer_payments_{days}d"] = float(count)
            vector[f"customer_spend_{days}d"] = spend / 100
        count, spend = _window(recent, t, CUSTOMER_WINDOW_MS)
        if count > 0:
            vector["customer_avg_payment_30d"] = spend / (count * 100)
            if spend > 0:
                vector["amount_vs_customer_avg_30d"] = (payment.amount_minor * count) / spend
        short, long = (_window(recent, t, width)[0] for width in PAYMENT_VELOCITY_MS)
        vector["customer_payments_last_10m"] = float(short)
        vector["customer_payments_last_1h"] = float(long)
        cards = {fp for fp, first in customer.get("cards", {}).items() if int(first) < t}
        vector["customer_distinct_cards"] = float(len(cards))
        vector["card_is_new_for_customer"] = 0.0 if payment.card_fingerprint in cards else 1.0

    if card is not None:
        recent = card.get("recent", ())
        vector["card_payments_last_1h"] = float(_window(recent, t, PAYMENT_VELOCITY_MS[1])[0])
        count, spend = _window(recent, t, CARD_WINDOW_MS)
        vector["card_payments_last_24h"] = float(count)
        vector["card_spend_last_24h"] = spend / 100
        first = card.get("first_ms")
        if first is not None and int(first) < t:
            vector["card_age_days"] = (t - int(first)) / DAY_MS

    if recorded is not None:
        by_customer, by_card = recorded
        customer_recent = (customer or {}).get("recent", ())
        short, long = (_recorded_window(customer_recent, by_customer, t, w) for w in PAYMENT_VELOCITY_MS)
        vector["customer_payments_last_10m"] = float(short)
        vector["customer_payments_last_1h"] = float(long)
        vector["card_payments_last_1h"] = float(
            _recorded_window((card or {}).get("recent", ()), by_card, t, PAYMENT_VELOCITY_MS[1])
        )

    day = t // DAY_MS
    if terminal is not None:
        payments = terminal.get("payments_by_day", {})
        frauds = terminal.get("frauds_by_day", {})
        vector[f"terminal_payments_{TERMINAL_DAYS}d"] = float(_days(payments, day, TERMINAL_DAYS))
        for days in TERMINAL_WINDOWS_DAYS:
            vector[f"terminal_fraud_rate_{days}d"] = fraud_rate(
                _days(frauds, day, days), _days(payments, day, days)
            )
    if merchant is not None:
        vector[f"merchant_fraud_rate_{TERMINAL_DAYS}d"] = fraud_rate(
            _days(merchant.get("frauds_by_day", {}), day, TERMINAL_DAYS),
            _days(merchant.get("payments_by_day", {}), day, TERMINAL_DAYS),
        )
    return vector


# --- reference store and replay --------------------------------------------------------------------------


class PaymentStore:
    """In-memory payment aggregates keyed by their `features` table key: the reference and the fake."""

    def __init__(self) -> None:
        self.items: dict[str, Aggregate] = {}

    def apply(self, event: PaymentContext | FraudLabel) -> None:
        for key, change in payment_changes(event):
            self.items[key] = change(self.items.get(key))

    def features(self, payment: PaymentContext) -> dict[str, float]:
        keys = payment_keys(payment)
        return compute_payment_features(payment, *(self.items.get(keys[e]) for e in ENTITIES))

    def snapshot(self) -> dict[str, Aggregate]:
        return copy.deepcopy(self.items)


ENTITIES = (CUSTOMER_ENTITY, CARD_ENTITY, TERMINAL_ENTITY, MERCHANT_ENTITY)


def customer_velocity_key(customer_id: str) -> str:
    """The `features` item where the score function records each payment it scores by customer
    (velocity before the stream catches up), as `velocity#<customer>` does for orders."""
    return entity_key("payment_velocity", customer_id)


def card_velocity_key(card_fingerprint: str) -> str:
    """The same record by card."""
    return entity_key("card_velocity", card_fingerprint)


def recorded_keys(customer_id: str, card_fingerprint: str) -> tuple[str, str]:
    return customer_velocity_key(customer_id), card_velocity_key(card_fingerprint)


def replay(
    payments: Iterable[PaymentContext], labels: Iterable[FraudLabel]
) -> tuple[PaymentStore, Iterator[tuple[PaymentContext, dict[str, float]]]]:
    """Walk a history in time order, yielding each payment with its point-in-time features.

    Events sharing a millisecond are applied only after every payment at that millisecond has been
    featurised ("strictly before" holds for ties). Consume the iterator fully before reading the store.
    """
    store = PaymentStore()

    def walk() -> Iterator[tuple[PaymentContext, dict[str, float]]]:
        timeline: list[tuple[int, int, str, PaymentContext | FraudLabel]] = [
            (p.time_ms, 0, p.transaction_id, p) for p in payments
        ] + [(label.labeled_at_ms, 1, label.transaction_id, label) for label in labels]
        timeline.sort(key=lambda e: (e[0], e[1], e[2]))
        i = 0
        while i < len(timeline):
            j = i
            while j < len(timeline) and timeline[j][0] == timeline[i][0]:
                j += 1
            batch = [e[3] for e in timeline[i:j]]
            for event in batch:
                if isinstance(event, PaymentContext):
                    yield event, store.features(event)
            for event in batch:
                store.apply(event)
            i = j

    return store, walk()
