"""One card-payment decision (POST /v1/risk-score with `event_type: "payment"`).

Features from the payment items (one BatchGetItem with the card and customer blocklist entries), the
payment model's score (the `payment` lane of the one model archive), the same policy path as orders
(thresholds from the payment model's config.json under `payment`, per-deployment overrides, hard
rules that only raise the level), then a payment action: approve, step_up_authentication (3-D
Secure or a one-time code), review, decline. The explanation has the order lane's contract: summary,
key factors in business language, recommendation, a customer message that reveals no signal.
A model that does not answer gives a degraded decision from the rules alone, never an approval.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator

from returnguard.currency import CURRENCIES, to_usd
from returnguard.features import amount_to_minor
from returnguard.payment_explain import explain_payment
from returnguard.payments import (
    ENTITIES,
    Channel,
    PaymentContext,
    compute_payment_features,
    payment_keys,
    recorded_keys,
)
from returnguard.policy import PolicyConfig, RiskLevel, apply
from returnguard.ports import FeatureStore, Model, ModelUnavailable, UnavailableReason
from returnguard.rules import online_flags
from returnguard.schemas import ExplanationOut, Order
from returnguard.scoring import UNKNOWN_VERSION, confidence
from returnguard.tables import blocklist_key

PAYMENT_MODEL_DIR = "payment"  # the payment model's folder in the archive and its key in RG_MODEL_CONFIG
PaymentAction = Literal["approve", "step_up_authentication", "review", "decline"]
PAYMENT_ACTIONS: dict[RiskLevel, PaymentAction] = {
    "low": "approve",
    "medium": "step_up_authentication",
    "high": "review",
    "critical": "decline",
}
# Without a payment model in the archive: the order lane's default levels (a degraded decision anyway).
DEFAULT_THRESHOLDS = {"medium": 0.3, "high": 0.6, "critical": 0.85}

_Text = Annotated[str, Strict()]
_ID = Field(min_length=1, max_length=128, pattern=r"\S")


class Payment(BaseModel):
    """The payment to score: the raw transaction schema (returnguard.payments) without a label."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    transaction_id: _Text = _ID
    customer_id: _Text = _ID
    card_fingerprint: _Text = Field(
        min_length=1,
        max_length=128,
        pattern=r"\S",
        description="A token of the card number, never the number.",
    )
    merchant_id: _Text = _ID
    terminal_id: _Text = _ID
    amount: Annotated[float, Strict()] = Field(gt=0, le=1e9, allow_inf_nan=False)
    currency: _Text = Field(json_schema_extra={"enum": list(CURRENCIES)})
    channel: Channel
    transaction_time: datetime = Field(
        default_factory=lambda: datetime.now(timezone.utc),
        description="Defaults to now. Must lie within the deployment's window around the time the API "
        "scores the payment (default: 7 days before to 5 minutes after), else 422.",
    )

    # the same checks as an order's (returnguard.schemas.Order), as the return request does
    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        return Order._known_currency(value)

    @field_validator("transaction_time", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return Order._text(value)

    @field_validator("transaction_time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return Order._utc(value)


class PaymentRiskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_type: Literal["payment"]
    payment: Payment
    locale: Literal["en", "hi"] = "en"
    explain: Literal["template"] = "template"


class PaymentRiskResponse(BaseModel):
    transaction_id: str
    decision_id: str
    risk_score: float | None
    risk_level: RiskLevel
    recommended_action: PaymentAction
    explanation: ExplanationOut
    customer_message: str
    rules_triggered: list[str]
    confidence: float
    degraded: bool
    degraded_reason: Literal["model_timeout", "model_error", "circuit_open"] | None = None
    processing_time_ms: float
    model_version: str
    timestamp: str


def payment_policy(
    model_config: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
) -> PolicyConfig:
    """The payment lane's policy: the payment model's thresholds (RG_MODEL_CONFIG under `payment`),
    then the deployment's overrides (the same settings as the order policy). ValueError names a bad one."""
    payment_model = model_config.get(PAYMENT_MODEL_DIR) or {}
    thresholds = payment_model.get("thresholds") or DEFAULT_THRESHOLDS
    return PolicyConfig.from_model_config({"thresholds": thresholds}, overrides)


def request_hash(request: PaymentRiskRequest) -> str:
    """The canonical request's SHA-256 (as returnguard.aws.decisions.body_hash for orders): a retry
    that leaves transaction_time out matches the first call."""
    canonical = request.model_dump(mode="json")
    if "transaction_time" not in request.payment.model_fields_set:
        del canonical["payment"]["transaction_time"]
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class PaymentDecision:
    response: PaymentRiskResponse
    vector: dict[str, float] = field(default_factory=dict)
    contributions: dict[str, float] = field(default_factory=dict)
    # the customer's and the card's payments as the API recorded them ({transaction id: time ms})
    recorded: tuple[dict[str, int], dict[str, int]] = field(default_factory=lambda: ({}, {}))


def _state(item: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if item is None:
        return None
    state = item.get("state", item)
    return state if isinstance(state, Mapping) else None


def _recorded(item: Mapping[str, Any] | None) -> dict[str, int]:
    """{transaction id: time ms} from a payment_velocity# or card_velocity# item (None: nothing recorded)."""
    payments = (item or {}).get("orders") or {}  # RecentOrders' map, named for the order lane
    return {str(transaction_id): int(time_ms) for transaction_id, time_ms in payments.items()}


def decide_payment(
    request: PaymentRiskRequest,
    store: FeatureStore,
    model: Model | None,
    policy_config: PolicyConfig,
    *,
    decision_id: str,
    now: datetime | None = None,
    started: float | None = None,
    # the thresholds of the payment model version that answered (a promotion changes them); else policy_config's
    policy_for: Callable[[str], PolicyConfig] | None = None,
) -> PaymentDecision:
    started = time.perf_counter() if started is None else started
    now = now or datetime.now(timezone.utc)
    p = request.payment
    context = PaymentContext(
        transaction_id=p.transaction_id,
        customer_id=p.customer_id,
        card_fingerprint=p.card_fingerprint,
        merchant_id=p.merchant_id,
        terminal_id=p.terminal_id,
        time_ms=int(p.transaction_time.timestamp() * 1000),
        amount_minor=amount_to_minor(p.amount),
        channel=p.channel,
    )
    keys = payment_keys(context)
    block_keys = [blocklist_key("card", p.card_fingerprint), blocklist_key("customer", p.customer_id)]
    velocity_keys = recorded_keys(p.customer_id, p.card_fingerprint)
    items = store.get_many([*keys.values(), *block_keys, *velocity_keys])
    states = [_state(items.get(keys[entity])) for entity in ENTITIES]
    recorded = (_recorded(items.get(velocity_keys[0])), _recorded(items.get(velocity_keys[1])))
    vector = compute_payment_features(context, *states, recorded=recorded)
    flags = online_flags(
        to_usd(p.amount, p.currency),
        vector["customer_payments_last_10m"],
        any(k in items for k in block_keys),
        policy_config.velocity_orders,
    )

    score: float | None = None
    contributions: dict[str, float] = {}
    version = UNKNOWN_VERSION
    degraded_reason: UnavailableReason | None = "model_error" if model is None else None
    if model is not None:
        try:
            result = model.score(vector)
            score, contributions, version = result.score, result.contributions, result.model_version
        except ModelUnavailable as error:
            degraded_reason = error.reason
    scored_by = policy_for(version) if policy_for is not None and score is not None else policy_config
    policy = apply(score, flags, scored_by, degraded=degraded_reason is not None)
    action = PAYMENT_ACTIONS[policy.risk_level]
    explanation = explain_payment(
        vector,
        contributions,
        risk_level=policy.risk_level,
        action=action,
        rules_triggered=policy.rules_triggered,
        customer_known=states[0] is not None,
        locale=request.locale,
    )
    response = PaymentRiskResponse(
        transaction_id=p.transaction_id,
        decision_id=decision_id,
        risk_score=None if score is None else round(score, 4),
        risk_level=policy.risk_level,
        recommended_action=action,
        explanation=ExplanationOut(
            summary=explanation.summary,
            key_factors=list(explanation.key_factors),
            recommendation=explanation.recommendation,
            source="template",
        ),
        customer_message=explanation.customer_message,
        rules_triggered=list(policy.rules_triggered),
        confidence=confidence(
            score, scored_by, flags.blocklisted or (score is None and bool(flags.triggered()))
        ),
        degraded=degraded_reason is not None,
        degraded_reason=degraded_reason,
        processing_time_ms=round((time.perf_counter() - started) * 1000, 2),
        model_version=version,
        timestamp=now.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
    )
    return PaymentDecision(response, vector, contributions, recorded)
