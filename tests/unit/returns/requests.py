"""A valid return request body and helpers shared by the return lane's tests."""

from __future__ import annotations

import copy
from typing import Any

from returnguard.fallback import KIND as FALLBACK_KIND

RETURN_TEST_VERSION = "return-test-1"  # the session's small return model (tests/return_model.py)

RETURN = {
    "return_id": "R1",
    "order_id": "O1",
    "customer_id": "C1",
    "product_id": "P1",
    "seller_id": "S1",
    "category": "fashion",
    "region": "KA",
    "return_date": "2025-01-10T00:00:00Z",
    "order_time": "2025-01-01T00:00:00Z",
    "delivered_at": "2025-01-04T00:00:00Z",
    "order_amount": 1999.0,
    "refund_amount": 1999.0,
    "currency": "INR",
    "reason_code": "size_fit",
    "reason": "Too small, need a bigger size",
    "return_method": "pickup",
    "items": [{"product_id": "P1", "quantity": 1}],
    "delivery_address": "12 MG Road, Bengaluru",
}


def body(locale: str = "en", explain: str = "template", **changes: Any) -> dict[str, Any]:
    ret = copy.deepcopy(RETURN)
    ret.update(changes)
    return {"event_type": "return", "return": ret, "locale": locale, "explain": explain}


def return_fallback(intercept: float = 0.0) -> dict[str, Any]:
    """A return-lane fallback model as training/train.py exports one (a logistic regression on three of
    the return features); `intercept` moves every score up or down."""
    return {
        "kind": FALLBACK_KIND,
        "model_version": f"{RETURN_TEST_VERSION}-fallback",
        "feature_names": ["refund_ratio", "days_since_delivery", "return_count"],
        "intercept": intercept,
        "coefficients": [0.8, -0.3, 0.6],
        "means": [1.0, 7.0, 1.0],
        "scales": [0.2, 5.0, 1.5],
        "thresholds": {"medium": 0.35, "high": 0.65, "critical": 0.9},
        "metrics": {},
    }
