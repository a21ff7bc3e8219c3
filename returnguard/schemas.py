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
    event_type: Literal["order", "return"]
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
