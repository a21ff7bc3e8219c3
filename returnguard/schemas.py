"""Request and response models of POST /v1/risk-score (pydantic v2). Unknown fields are rejected.

`confidence` is how clearly the score sits inside its risk level: 0.5 on a level boundary rising
linearly to 1.0 at CONFIDENCE_MARGIN or more away from the nearest boundary (see scoring.confidence).
A decision taken by a hard rule alone (degraded mode) reports 1.0 when a rule decided (blocklist) and
0.0 otherwise: without a model score nothing backs the level but the rules.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

PaymentMethod = Literal["card", "upi", "netbanking", "wallet", "cod"]
NOT_BLANK = r"\S"  # strings are stripped before the length checks: all-blank is not "at least one character"
_ID = Field(min_length=1, max_length=64, pattern=NOT_BLANK)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Order(_Strict):
    order_id: str = _ID
    customer_id: str = _ID
    product_id: str = _ID
    seller_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=NOT_BLANK)
    category: str | None = Field(default=None, min_length=1, max_length=64, pattern=NOT_BLANK)
    region: str = Field(min_length=1, max_length=64, pattern=NOT_BLANK)
    amount: float = Field(gt=0, le=1e9, allow_inf_nan=False)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    payment_method: PaymentMethod
    delivery_address: str = Field(min_length=1, max_length=512, pattern=NOT_BLANK)
    card_fingerprint: str | None = Field(default=None, min_length=1, max_length=128, pattern=NOT_BLANK)
    order_time: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))

    @field_validator("order_time")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


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
