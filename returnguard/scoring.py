"""One decision: features from the store, model score, policy, explanation.

`decide` never raises for a model failure: the fallback model (returnguard.fallback) scores the order
instead, or, without one, the hard rules alone decide; either way the decision is `degraded` with a
`degraded_reason` and the deployment's degraded policy applies (returnguard.policy). Category and seller come from the request when given; the product
aggregate does not record them, so a request without them scores those features at their prior.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from returnguard.currency import to_usd
from returnguard.explain import explain
from returnguard.fallback import FallbackModel
from returnguard.features import (
    LINK_IDENTIFIERS,
    LINK_ITEMS,
    OrderContext,
    address_key,
    amount_to_minor,
    compute_features,
    link_ids,
    pair_ids,
)
from returnguard.policy import PolicyConfig, PolicyResult, apply
from returnguard.ports import FeatureStore, Model, ModelUnavailable, UnavailableReason
from returnguard.rules import online_flags
from returnguard.schemas import ExplanationOut, RiskScoreRequest, RiskScoreResponse
from returnguard.tables import blocklist_key, entity_key, recent_orders_key
from returnguard.variants import Challenger, Variant, route, shadow_score

CONFIDENCE_MARGIN = 0.15
COD_FEATURES = frozenset({"customer_cod_refusals", "payment_is_cod"})
UNKNOWN_VERSION = "rules-only"


def decision_id(event_type: str, order_id: str) -> str:
    """Deterministic but guessable: only for callers without a client and a secret (tests, the offline
    benchmark). The score function names decisions with `returnguard.access.decision_id` (keyed)."""
    return "dec_" + hashlib.sha256(f"{event_type}\x00{order_id}".encode()).hexdigest()[:32]


def confidence(score: float | None, config: PolicyConfig, rule_decided: bool) -> float:
    """0.5 on a level boundary, 1.0 at CONFIDENCE_MARGIN or further inside the level (see schemas)."""
    if score is None:
        return 1.0 if rule_decided else 0.0
    distance = min(abs(score - t) for t in (config.medium, config.high, config.critical))
    return round(0.5 + 0.5 * min(1.0, distance / CONFIDENCE_MARGIN), 4)


@dataclass
class Decision:
    response: RiskScoreResponse
    vector: dict[str, float] = field(default_factory=dict)
    contributions: dict[str, float] = field(default_factory=dict)
    policy: PolicyResult | None = None
    recent_orders: dict[str, int] = field(default_factory=dict)  # the customer's, as the API recorded them
    variant: Variant = "champion"  # which model decided (returnguard.variants)
    shadow: dict[str, Any] | None = None  # the challenger's shadow score, never used to decide


def _state(item: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if item is None:
        return None
    state = item.get("state", item)
    return state if isinstance(state, Mapping) else None


def _recent_orders(item: Mapping[str, Any] | None) -> dict[str, int]:
    """{order id: order time ms} from a velocity# item as the store decodes it (None: nothing recorded)."""
    orders = (item or {}).get("orders") or {}
    return {str(order_id): int(time_ms) for order_id, time_ms in orders.items()}


def decide(
    request: RiskScoreRequest,
    store: FeatureStore,
    model: Model | None,
    policy_config: PolicyConfig,
    now: datetime | None = None,
    *,
    started: float | None = None,
    fallback: FallbackModel | None = None,
    keyed_id: str | None = None,  # the score function's returnguard.access.decision_id
    challenger: Challenger | None = None,  # shadow or A-B (returnguard.variants)
    # the thresholds of the model version that answered (a promotion changes them); else policy_config's
    policy_for: Callable[[str], PolicyConfig] | None = None,
) -> Decision:
    started = time.perf_counter() if started is None else started
    now = now or datetime.now(timezone.utc)
    o = request.order
    t_ms = int(o.order_time.timestamp() * 1000)
    seller = o.seller_id or ""
    category = o.category or ""
    context = OrderContext(
        order_id=o.order_id,
        customer_id=o.customer_id,
        product_id=o.product_id,
        seller_id=seller,
        category=category,
        region=o.region,
        order_time_ms=t_ms,
        amount_minor=amount_to_minor(o.amount),
        payment_method=o.payment_method,
        delivery_address=o.delivery_address,
        **{name: getattr(o, name) for name in LINK_IDENTIFIERS.values()},
    )
    keys = {
        "customer": entity_key("customer", o.customer_id),
        "product": entity_key("product", o.product_id),
        "region": entity_key("region", o.region),
    }
    if seller:
        keys["seller"] = entity_key("seller", seller)
    if category:
        keys["category"] = entity_key("category", category)
    keys.update({group: entity_key(LINK_ITEMS[group], key) for group, key in link_ids(context).items()})
    keys.update({group: entity_key(group, key) for group, key in pair_ids(context).items()})
    block_keys = [
        blocklist_key("customer", o.customer_id),
        blocklist_key("address", address_key(o.delivery_address)),
    ]
    if o.card_fingerprint:
        block_keys.append(blocklist_key("card", o.card_fingerprint))
    recent_key = recent_orders_key(o.customer_id)
    items = store.get_many([*keys.values(), *block_keys, recent_key])
    recent = _recent_orders(items.get(recent_key))

    customer = _state(items.get(keys["customer"]))
    entities = {g: _state(items.get(k)) for g, k in keys.items() if g != "customer"}
    vector = compute_features(context, customer, entities, recent)
    blocklisted = any(k in items for k in block_keys)
    flags = online_flags(
        to_usd(o.amount, o.currency),
        vector["customer_orders_last_60s"],
        blocklisted,
        policy_config.velocity_orders,
    )

    score: float | None = None
    contributions: dict[str, float] = {}
    version = UNKNOWN_VERSION
    degraded_reason: UnavailableReason | None = "model_error" if model is None else None
    routed = route(challenger, o.customer_id, hard_rule=bool(flags.triggered()), champion=model)
    scored_by = policy_config
    if routed.model is not None:
        try:
            result = routed.model.score(vector)
            score, contributions, version = result.score, result.contributions, result.model_version
            scored_by = policy_for(version) if policy_for is not None else policy_config
        except ModelUnavailable as error:
            degraded_reason = error.reason
    if degraded_reason is not None and fallback is not None:
        result = fallback.score(vector)
        score, contributions, version = result.score, result.contributions, result.model_version
        scored_by = policy_config.with_thresholds(fallback.thresholds)
    top = sorted(((c, n) for n, c in contributions.items() if c > 0), reverse=True)[:3]
    policy = apply(
        score,
        flags,
        scored_by,
        cod_refusals=vector["customer_cod_refusals"],
        payment_is_cod=o.payment_method == "cod",
        cod_drives_risk=o.payment_method == "cod" and any(n in COD_FEATURES for _, n in top),
        degraded=degraded_reason is not None,
    )
    explanation = explain(
        vector,
        contributions,
        risk_level=policy.risk_level,
        action=policy.recommended_action,
        hints=policy.hints,
        rules_triggered=policy.rules_triggered,
        order_time_ms=t_ms,
        customer_known=customer is not None,
        locale=request.locale,
    )
    rule_decided = flags.blocklisted or (score is None and bool(policy.rules_triggered))
    response = RiskScoreResponse(
        order_id=o.order_id,
        decision_id=keyed_id or decision_id(request.event_type, o.order_id),
        risk_score=None if score is None else round(score, 4),
        risk_level=policy.risk_level,
        recommended_action=policy.recommended_action,
        explanation=ExplanationOut(
            summary=explanation.summary,
            key_factors=list(explanation.key_factors),
            recommendation=explanation.recommendation,
            source="template",
        ),
        customer_message=explanation.customer_message,
        rules_triggered=list(policy.rules_triggered),
        confidence=confidence(score, scored_by, rule_decided),
        degraded=degraded_reason is not None,
        degraded_reason=degraded_reason,
        processing_time_ms=round((time.perf_counter() - started) * 1000, 2),
        model_version=version,
        timestamp=now.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
    )
    shadow = shadow_score(challenger, vector)
    return Decision(response, vector, contributions, policy, recent, routed.variant, shadow)
