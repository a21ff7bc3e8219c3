"""One return decision: features from the store, the return model's score, the hard rules, the refund
ladder, the explanation. The return lane's counterpart of returnguard.scoring.decide.

The customer's reason text reaches the decision only through the return features
(returnguard.returns: length, language, agreement with the reason code, repeats across customers):
no rule, threshold or template reads it, so whatever it says, the same features give the same action.
A model that does not answer (or an archive without a return model) makes the decision `degraded`: the
return lane's fallback model (returnguard.fallback, when the score function carries one) scores it on
its own thresholds, the rules still apply and the ladder's level is at least medium (never an instant
refund without the return model).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from returnguard import order_record
from returnguard.explain import explain
from returnguard.fallback import FallbackModel
from returnguard.features import amount_to_minor
from returnguard.ports import FeatureStore, Model, ModelUnavailable, UnavailableReason
from returnguard.returns import feature_keys, features_from_items, request_context
from returnguard.returns_explain import RETURN_TEXTS
from returnguard.returns_policy import ReturnPolicyConfig, ReturnPolicyResult, apply_return
from returnguard.returns_rules import ReturnFacts, check
from returnguard.schemas import ExplanationOut, ReturnScoreRequest, ReturnScoreResponse
from returnguard.scoring import UNKNOWN_VERSION, decision_id
from returnguard.tables import blocklist_key

CONFIDENCE_MARGIN = 0.15


@dataclass
class ReturnDecision:
    response: ReturnScoreResponse
    vector: dict[str, float] = field(default_factory=dict)
    contributions: dict[str, float] = field(default_factory=dict)
    policy: ReturnPolicyResult | None = None


def _state(item: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if item is None:
        return None
    state = item.get("state", item)
    return state if isinstance(state, Mapping) else None


def confidence(score: float | None, config: ReturnPolicyConfig, rule_decided: bool) -> float:
    """As for orders (returnguard.scoring.confidence): 0.5 on a level boundary, 1.0 well inside; 1.0
    when a hard rule decided (a denial or a review does not rest on the score), 0.0 with neither."""
    if rule_decided:
        return 1.0
    if score is None:
        return 0.0
    distance = min(abs(score - t) for t in (config.medium, config.high, config.critical))
    return round(0.5 + 0.5 * min(1.0, distance / CONFIDENCE_MARGIN), 4)


def decide_return(
    request: ReturnScoreRequest,
    store: FeatureStore,
    model: Model | None,
    config: ReturnPolicyConfig,
    now: datetime | None = None,
    *,
    started: float | None = None,
    keyed_id: str | None = None,  # the score function's returnguard.access.decision_id
    fallback: FallbackModel | None = None,  # the return lane's, scoring when the model cannot
    # the ladder of the return model version that answered (a promotion changes it); else config
    policy_for: Callable[[str], ReturnPolicyConfig] | None = None,
) -> ReturnDecision:
    started = time.perf_counter() if started is None else started
    now = now or datetime.now(timezone.utc)
    r = request.return_
    context = request_context(r)
    keys = feature_keys(context)
    record_key = order_record.order_record_key(r.order_id)
    block_key = blocklist_key("customer", r.customer_id)
    items = store.get_many([*keys.values(), record_key, block_key])
    vector = features_from_items(context, {group: _state(items.get(key)) for group, key in keys.items()})

    order = order_record.facts(
        items.get(record_key),
        order_id=r.order_id,
        delivered_at_ms=context.delivered_at_ms,
        stated_customer_id=r.customer_id,
        stated_amount_minor=amount_to_minor(r.order_amount),
        stated_currency=r.currency,
        stated_order_time_ms=int(r.order_time.timestamp() * 1000),
    )
    rules = check(
        ReturnFacts(
            return_id=r.return_id,
            order_id=r.order_id,
            customer_id=r.customer_id,
            product_id=r.product_id,
            refund_minor=context.refund_amount_minor,
            currency=r.currency,
            requested_at_ms=context.request_time_ms,
        ),
        order,
        blocklisted=block_key in items,
        window_days=config.return_window_days,
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
    scored_by = policy_for(version) if policy_for is not None and score is not None else config
    if degraded_reason is not None and fallback is not None:
        result = fallback.score(vector)
        score, contributions, version = result.score, result.contributions, result.model_version
        scored_by = config.with_thresholds(fallback.thresholds)
    policy = apply_return(
        score,
        rules.rules_triggered,
        scored_by,
        deny=rules.deny,
        review=rules.review,
        degraded=degraded_reason is not None,
    )
    customer_known = _state(items.get(keys["customer"])) is not None
    explanation = explain(
        vector,
        contributions,
        risk_level=policy.risk_level,
        action=policy.recommended_action,
        rules_triggered=policy.rules_triggered,
        order_time_ms=context.request_time_ms,
        customer_known=customer_known,
        locale=request.locale,
        texts=RETURN_TEXTS,
    )
    response = ReturnScoreResponse(
        order_id=r.order_id,
        return_id=r.return_id,
        decision_id=keyed_id or decision_id("return", r.return_id),
        risk_score=None if score is None else round(score, 4),
        risk_level=policy.risk_level,
        recommended_action=policy.recommended_action,  # type: ignore[arg-type]
        review_required=policy.review_required,
        explanation=ExplanationOut(
            summary=explanation.summary,
            key_factors=list(explanation.key_factors),
            recommendation=explanation.recommendation,
            source="template",
        ),
        customer_message=explanation.customer_message,
        rules_triggered=list(policy.rules_triggered),
        confidence=confidence(score, scored_by, rules.deny or rules.review),
        degraded=degraded_reason is not None,
        degraded_reason=degraded_reason,
        processing_time_ms=round((time.perf_counter() - started) * 1000, 2),
        model_version=version,
        timestamp=now.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
    )
    return ReturnDecision(response, vector, contributions, policy)
