"""The JSON schema API Gateway validates POST /v1/risk-score against (draft-04, what API Gateway supports).

The one copy in the infrastructure: when `docs/openapi.*` carries the request model, derive it from there.
"""

from __future__ import annotations

from typing import Any

_MONEY = {"type": "number", "minimum": 0}
_ID = {"type": "string", "minLength": 1, "maxLength": 64}
_CURRENCY = {"type": "string", "pattern": "^[A-Z]{3}$"}

ORDER: dict[str, Any] = {
    "type": "object",
    "required": ["order_id", "customer_id", "product_id", "amount", "currency", "payment_method"],
    "properties": {
        "order_id": _ID,
        "customer_id": _ID,
        "product_id": _ID,
        "seller_id": _ID,
        "amount": _MONEY,
        "currency": _CURRENCY,
        "payment_method": {"type": "string", "enum": ["cod", "card", "upi", "netbanking", "wallet"]},
        "order_time": {"type": "string", "maxLength": 40},
        "category": {"type": "string", "maxLength": 64},
        "delivery_address": {"type": "string", "maxLength": 512},
        "delivery_pincode": {"type": "string", "maxLength": 16},
        "region": {"type": "string", "maxLength": 64},
    },
}

RETURN: dict[str, Any] = {
    "type": "object",
    "required": ["return_id", "order_id", "customer_id"],
    "properties": {
        "return_id": _ID,
        "order_id": _ID,
        "customer_id": _ID,
        "product_id": _ID,
        "reason": {"type": "string", "maxLength": 1000},
        "refund_amount": _MONEY,
        "currency": _CURRENCY,
        "return_method": {"type": "string", "maxLength": 32},
        "return_time": {"type": "string", "maxLength": 40},
    },
}

RISK_SCORE_REQUEST: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "title": "RiskScoreRequest",
    "type": "object",
    "required": ["event_type"],
    "properties": {
        "event_type": {"type": "string", "enum": ["order", "return"]},
        "order": ORDER,
        "return": RETURN,
        "locale": {"type": "string", "pattern": "^[a-z]{2}(-[A-Z]{2})?$"},
        "explain": {"type": "boolean"},
    },
    "oneOf": [
        {"properties": {"event_type": {"enum": ["order"]}}, "required": ["order"]},
        {"properties": {"event_type": {"enum": ["return"]}}, "required": ["return"]},
    ],
}
