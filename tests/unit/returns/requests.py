"""A valid return request body and helpers shared by the return lane's tests."""

from __future__ import annotations

import copy
from typing import Any

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
