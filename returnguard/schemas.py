"""Request and response models of POST /v1/risk-score (pydantic v2). Unknown fields are rejected.

`confidence` is how clearly the score sits inside its risk level: 0.5 on a level boundary rising
linearly to 1.0 at CONFIDENCE_MARGIN or more away from the nearest boundary (see scoring.confidence).
A decision taken by a hard rule alone (degraded mode) reports 1.0 when a rule decided (blocklist) and
0.0 otherwise: without a model score nothing backs the level but the rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator

from returnguard.currency import CURRENCIES

PaymentMethod = Literal["card", "upi", "netbanking", "wallet", "cod"]
NOT_BLANK = r"\S"  # strings are stripped before the length checks: all-blank is not "at least one character"
# Strict where the spec names a type: "1499" or true is not a number, 12345 is not a string (an
# integer is a number: JSON does not tell 1499 from 1499.0).
Text = Annotated[str, Strict()]
Number = Annotated[float, Strict()]
_ID = Field(min_length=1, max_length=64, pattern=NOT_BLANK)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Order(_Strict):
    order_id: Text = _ID
    customer_id: Text = _ID
    product_id: Text = _ID
    seller_id: Text | None = Field(default=None, min_length=1, max_length=64, pattern=NOT_BLANK)
    category: Text | None = Field(default=None, min_length=1, max_length=64, pattern=NOT_BLANK)
    region: Text = Field(min_length=1, max_length=64, pattern=NOT_BLANK)
    amount: Number = Field(gt=0, le=1e9, allow_inf_nan=False)
    currency: Text = Field(json_schema_extra={"enum": list(CURRENCIES)})
    payment_method: PaymentMethod
    delivery_address: Text = Field(min_length=1, max_length=512, pattern=NOT_BLANK)
    card_fingerprint: Text | None = Field(default=None, min_length=1, max_length=128, pattern=NOT_BLANK)
    device_id: Text | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=NOT_BLANK,
        description="Optional. A stable identifier of the ordering device, hashed by the caller.",
    )
    phone_hash: Text | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=NOT_BLANK,
        description="Optional. A hash of the customer's normalised phone number, computed by the caller.",
    )
    ip_prefix: Text | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=NOT_BLANK,
        description="Optional. The ordering IP's network prefix (e.g. a /24 or /48), hashed by the caller.",
    )
    order_time: datetime = Field(
        default_factory=lambda: datetime.now(timezone.utc),
        description="Defaults to now. Must lie within the deployment's window around the time the API "
        "scores the order (default: 7 days before to 5 minutes after), else 422.",
    )

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        if value not in CURRENCIES:
            raise ValueError(f"must be one of {', '.join(CURRENCIES)}")
        return value

    @field_validator("order_time", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        # the spec says an ISO 8601 string; pydantic alone would also take a number as Unix time
        if not isinstance(value, (str, datetime)):
            raise ValueError("must be an ISO 8601 date-time string, e.g. 2026-10-20T10:30:00Z")
        return value

    @field_validator("order_time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        """In UTC (a time without a zone is UTC), so one instant has one form wherever it was written."""
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        try:
            return value.astimezone(timezone.utc)
        except OverflowError:  # 0001-01-01T00:00:00+05:00 is before year 1 in UTC
            raise ValueError("is outside the years 1 to 9999 in UTC") from None


ReturnReasonCode = Literal[
    "damaged",
    "defective",
    "empty_box",
    "wrong_item",
    "size_fit",
    "not_as_described",
    "quality",
    "changed_mind",
    "late_delivery",
]  # returnguard.features.RETURN_REASON_CODES (a test keeps the two equal)
ReturnStatus = Literal["requested", "approved", "rejected", "refunded"]
ReturnMethod = Literal["pickup", "drop_off"]
_ADDRESS = Field(min_length=1, max_length=512, pattern=NOT_BLANK)


class ReturnItem(_Strict):
    product_id: Text = _ID
    quantity: Annotated[int, Strict()] = Field(default=1, ge=1, le=100)


class ReturnRequest(_Strict):
    """A customer's return request as the merchant's returns system knows it when the customer asks
    (seed 004's return fields plus reason code, free text, items and pickup address).

    `reason` is written by the customer: untrusted, at most 1,000 characters, never logged; it only
    reaches a decision through the model's text features (returnguard.returns).
    """

    return_id: Text = _ID
    order_id: Text = _ID
    customer_id: Text = _ID
    product_id: Text = _ID
    seller_id: Text | None = Field(default=None, min_length=1, max_length=64, pattern=NOT_BLANK)
    category: Text | None = Field(default=None, min_length=1, max_length=64, pattern=NOT_BLANK)
    region: Text = Field(min_length=1, max_length=64, pattern=NOT_BLANK)
    return_date: datetime = Field(
        default_factory=lambda: datetime.now(timezone.utc),
        description="When the customer asked for the return; defaults to now.",
    )
    order_time: datetime = Field(description="When the order was placed.")
    delivered_at: datetime | None = Field(
        default=None, description="When the order was delivered; null: it was not delivered."
    )
    order_amount: Number = Field(
        gt=0, le=1e9, allow_inf_nan=False, description="What was paid for the order."
    )
    refund_amount: Number = Field(
        ge=0, le=1e9, allow_inf_nan=False, description="What the customer asks back."
    )
    currency: Text = Field(json_schema_extra={"enum": list(CURRENCIES)})
    reason_code: ReturnReasonCode
    reason: Text | None = Field(
        default=None,
        max_length=1000,
        description="The customer's own words (untrusted; at most 1,000 characters).",
    )
    status: ReturnStatus = "requested"
    return_method: ReturnMethod
    items: list[ReturnItem] = Field(default_factory=list, max_length=50)
    delivery_address: Text = _ADDRESS
    pickup_address: Text | None = Field(default=None, min_length=1, max_length=512, pattern=NOT_BLANK)

    # a validation error must not carry the customer's text (or anything else sent) back into logs
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, hide_input_in_errors=True)

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        return Order._known_currency(value)

    @field_validator("return_date", "order_time", "delivered_at", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return value if value is None else Order._text(value)

    @field_validator("return_date", "order_time", "delivered_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return value if value is None else Order._utc(value)


class OrderTimeOutOfWindow(ValueError):
    """`order_time` too far from the time the order is scored (HTTP 422 naming the field)."""

    code = "invalid_request"
    field = "order.order_time"


@dataclass(frozen=True)
class OrderTimeWindow:
    """How far before and after now an `order_time` may lie: a per-deployment setting.

    Features are computed as of the order's time, so a time in the future sees the customer's history
    from ahead of it (no returns in the 30 days before year 9999) and a time far in the past sees
    aggregates that have moved on; either would let a caller pick its own decision. `future` allows
    for clock skew between the caller and the API, `past` for orders scored a little late.
    """

    past: timedelta = timedelta(days=7)
    future: timedelta = timedelta(minutes=5)

    def check(self, order_time: datetime, now: datetime) -> None:
        offset = order_time.timestamp() - now.timestamp()  # seconds: no date arithmetic to overflow
        if -self.past.total_seconds() <= offset <= self.future.total_seconds():
            return
        raise OrderTimeOutOfWindow(
            f"must be within {_span(self.past)} before and {_span(self.future)} after the time the order "
            f"is scored ({now.astimezone(timezone.utc).isoformat(timespec='seconds').replace('+00:00', 'Z')})"
        )


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


class RiskScoreRequest(_Strict):
    event_type: Literal["order"]  # a return request is a ReturnScoreRequest
    order: Order
    locale: Literal["en", "hi"] = "en"
    explain: Literal["template", "narrative"] = "template"


class ExplanationOut(BaseModel):
    summary: str
    key_factors: list[str]
    recommendation: str
    source: Literal["template", "bedrock"] = "template"
    narrative: str | None = None  # Bedrock's paragraph for the reviewer, when source is "bedrock"


class RiskScoreResponse(BaseModel):
    order_id: str
    decision_id: str
    risk_score: float | None
    risk_level: Literal["low", "medium", "high", "critical"]
    recommended_action: Literal["approve", "otp_verification", "manual_review", "block"]
    explanation: ExplanationOut
    customer_message: str
    rules_triggered: list[str]
    confidence: float
    degraded: bool
    # why the model endpoint gave no score (degraded decisions only): model_timeout, model_error, or
    # circuit_open (it failed just before and is skipped until a probe finds it back)
    degraded_reason: Literal["model_timeout", "model_error", "circuit_open"] | None = None
    processing_time_ms: float
    model_version: str
    timestamp: str


RefundAction = Literal[
    "instant_refund",
    "refund_after_pickup_inspection",
    "photo_or_video_proof",
    "open_box_pickup",
    "manual_review",
    "deny_refund",
]  # returnguard.returns_policy.REFUND_STRICTNESS (a test keeps the two equal)


class ReturnScoreRequest(_Strict):
    """POST /v1/risk-score for a return request: `{"event_type": "return", "return": {...}}`."""

    event_type: Literal["return"]
    return_: ReturnRequest = Field(alias="return")
    locale: Literal["en", "hi"] = "en"
    explain: Literal["template", "narrative"] = "template"

    # the customer's reason text is never echoed back in an error (nor anything else sent)
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, hide_input_in_errors=True)


class ReturnScoreResponse(RiskScoreResponse):
    """The order response's shape, with the return's id and a refund action. `deny_refund` comes only
    from a hard rule and, like `manual_review`, waits for a person (`review_required`)."""

    return_id: str
    recommended_action: RefundAction  # type: ignore[assignment]
    review_required: bool
