"""The event envelope on the Kinesis `events` stream (docs/events.md).

    {"event_type": "order" | "return" | "customer" | "product",
     "event_id": "<unique per event; a retry by the producer reuses it>",
     "event_time": "<ISO 8601 with zone: when it happened, not when it was sent>",
     "payload": {...}}

Producers put each event with the customer id as partition key (product events: the product id),
so one customer's events stay in order on one shard. `parse` validates a record and says exactly
what is wrong with a bad one; `to_context` turns a payload into what `returnguard.aggregates` applies.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from returnguard.aggregates import ReturnContext
from returnguard.features import LINK_IDENTIFIERS, OrderContext, amount_to_minor
from returnguard.payments import PaymentLabelPayload, PaymentPayload
from returnguard.returns import text_key

EventType = Literal["order", "return", "customer", "product", "payment", "payment_label"]
_ID = Annotated[str, Field(min_length=1, max_length=128, pattern=r"\S")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _OrderFacts(_Strict):
    """What an order and its return both name: the entities the aggregates count them against."""

    order_id: _ID
    customer_id: _ID
    product_id: _ID
    seller_id: _ID
    category: _ID
    region: _ID


class OrderPayload(_OrderFacts):
    amount: float = Field(gt=0, le=1e9, allow_inf_nan=False)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    payment_method: Literal["card", "upi", "netbanking", "wallet", "cod"]
    delivery_address: str = Field(min_length=1, max_length=512)
    card_fingerprint: str | None = Field(default=None, min_length=1, max_length=128)
    device_id: str | None = Field(default=None, min_length=1, max_length=128)
    phone_hash: str | None = Field(default=None, min_length=1, max_length=128)
    ip_prefix: str | None = Field(default=None, min_length=1, max_length=128)


class ReturnPayload(_OrderFacts):
    """A return request (event_time: when the customer asked). The optional fields are the request's
    facts as returnguard.schemas.ReturnRequest names them; the aggregates read the ids, the reason
    code and the reason text's key (`returnguard.returns.text_key`, never the text itself)."""

    return_id: _ID
    reason_code: _ID
    reason: str | None = Field(default=None, max_length=1000)  # untrusted free text
    status: Literal["requested", "approved", "rejected", "refunded"] | None = None
    refund_amount: float | None = Field(default=None, ge=0, le=1e9, allow_inf_nan=False)
    order_amount: float | None = Field(default=None, gt=0, le=1e9, allow_inf_nan=False)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    return_method: Literal["pickup", "drop_off", "rto"] | None = None
    delivered_at: datetime | None = None
    delivery_address: str | None = Field(default=None, min_length=1, max_length=512)
    pickup_address: str | None = Field(default=None, min_length=1, max_length=512)
    item_count: int | None = Field(default=None, ge=1, le=5000)
    # the returned order's identifiers as its order event gave them: the return is remembered on
    # their link items too (the linked-outcome features of other customers' orders)
    card_fingerprint: str | None = Field(default=None, min_length=1, max_length=128)
    device_id: str | None = Field(default=None, min_length=1, max_length=128)
    phone_hash: str | None = Field(default=None, min_length=1, max_length=128)
    ip_prefix: str | None = Field(default=None, min_length=1, max_length=128)


class CustomerPayload(_Strict):
    customer_id: _ID
    registered_at: datetime


class ProductPayload(_Strict):
    product_id: _ID
    category: _ID
    seller_id: _ID


PAYLOADS: dict[str, type[BaseModel]] = {
    "order": OrderPayload,
    "return": ReturnPayload,
    "customer": CustomerPayload,
    "product": ProductPayload,
    "payment": PaymentPayload,  # card payments: returnguard.payments
    "payment_label": PaymentLabelPayload,
}


class Envelope(_Strict):
    event_type: EventType
    event_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")  # also names its lake object
    event_time: datetime
    payload: dict[str, Any]

    @field_validator("event_time")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("event_time needs a time zone (e.g. 2026-11-25T10:00:00Z)")
        return value.astimezone(timezone.utc)

    @property
    def time_ms(self) -> int:
        return int(self.event_time.timestamp() * 1000)


class InvalidEvent(ValueError):
    """A record that can never be applied: its reason goes with it to the dead-letter queue."""


def _reason(error: ValidationError, prefix: str = "") -> str:
    problems = [
        f"{prefix}{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in error.errors()
    ]
    return "; ".join(problems[:5])


def parse(data: bytes | str) -> tuple[Envelope, BaseModel]:
    """One record's bytes → (envelope, typed payload), or InvalidEvent naming what is wrong."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidEvent(f"not JSON: {error}") from None
    if not isinstance(raw, dict):
        raise InvalidEvent("not a JSON object")
    try:
        envelope = Envelope.model_validate(raw)
    except ValidationError as error:
        raise InvalidEvent(_reason(error)) from None
    try:
        payload = PAYLOADS[envelope.event_type].model_validate(envelope.payload)
    except ValidationError as error:
        raise InvalidEvent(_reason(error, "payload.")) from None
    if (
        isinstance(payload, PaymentPayload)
        and payload.labeled_at
        and payload.labeled_at < envelope.event_time
    ):
        raise InvalidEvent("payload.labeled_at: is before the payment's event_time")
    return envelope, payload


_SHARED = ("order_id", "customer_id", "product_id", "seller_id", "category", "region")


def to_context(envelope: Envelope, payload: _Strict) -> OrderContext | ReturnContext | None:
    """What the aggregates apply; None for events they do not count (customer and product profiles)."""
    if isinstance(payload, OrderPayload):
        return OrderContext(
            **payload.model_dump(include=set(_SHARED)),
            order_time_ms=envelope.time_ms,
            amount_minor=amount_to_minor(payload.amount),
            payment_method=payload.payment_method,
            delivery_address=payload.delivery_address,
            **{name: getattr(payload, name) for name in LINK_IDENTIFIERS.values()},
        )
    if isinstance(payload, ReturnPayload):
        return ReturnContext(
            **payload.model_dump(include={*_SHARED, "return_id", "reason_code"}),
            return_time_ms=envelope.time_ms,
            reason_text_key=text_key(payload.reason or ""),
            delivery_address=payload.delivery_address,
            **{name: getattr(payload, name) for name in LINK_IDENTIFIERS.values()},
        )
    return None


def order_payload(order: OrderContext, currency: str = "INR") -> dict[str, Any]:
    """An order's payload (the same fields as the API's `order`, without its time)."""
    return {
        **{name: getattr(order, name) for name in _SHARED},
        "amount": order.amount_minor / 100,
        "currency": currency,
        "payment_method": order.payment_method,
        "delivery_address": order.delivery_address,
        **{name: getattr(order, name) for name in LINK_IDENTIFIERS.values() if getattr(order, name)},
    }


def return_payload(ret: ReturnContext, reason: str | None = None) -> dict[str, Any]:
    payload = {name: getattr(ret, name) for name in (*_SHARED, "return_id", "reason_code")}
    for name in ("delivery_address", *LINK_IDENTIFIERS.values()):
        if getattr(ret, name):
            payload[name] = getattr(ret, name)
    return payload if reason is None else {**payload, "reason": reason}


def envelope(event_type: str, event_id: str, event_time_ms: int, payload: dict[str, Any]) -> dict[str, Any]:
    """Build an envelope (producers, the local replay, tests)."""
    when = datetime.fromtimestamp(event_time_ms / 1000, tz=timezone.utc)
    return {
        "event_type": event_type,
        "event_id": event_id,
        "event_time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "payload": payload,
    }


def partition_key(event: dict[str, Any]) -> str:
    """Customer id (product id for product events): one customer's events stay in order on one shard."""
    payload = event.get("payload") or {}
    return str(payload.get("customer_id") or payload.get("product_id") or event.get("event_id"))
