"""The minimal record of one order the return rules need: `order#<order id>` items in the features table.

The customer aggregate keeps only the last orders, without what was paid per order or which items went
back, so a return request could not tell what was paid for its order or whether the same item was
returned before. This record keeps exactly that, as plain attributes (returnguard/aws/order_records.py
writes them):

    customer_id, product_id   whose order, of what
    amount_minor, currency    what was paid
    order_time_ms             when it was placed
    returned                  {return id: product id}: the returns the API decided for this order

The score function writes the order's facts when it decides the order and adds each return it
decides, so two requests for the same item seconds apart are caught; the stream consumer does the same
from order and return events (returnguard/aws/stream_apply.py), so orders placed without a score call
are known too. Both writes are idempotent (a retried request sets the same values) and commute. An
order neither saw has no facts (only `returned`, if a return came first): the rules then take the
request's own statement of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from returnguard.returns_rules import OrderFacts
from returnguard.tables import entity_key


def order_record_key(order_id: str) -> str:
    return entity_key("order", order_id)


def facts(
    state: Mapping[str, Any] | None,
    *,
    order_id: str,
    delivered_at_ms: int | None,
    stated_customer_id: str,
    stated_amount_minor: int,
    stated_currency: str,
    stated_order_time_ms: int,
) -> OrderFacts:
    """The order as the rules see it: the record's facts where it has them (an order event made it),
    the request's (`stated_*`) where it does not. Delivery is always the request's: no event tells the
    store about deliveries."""
    state = state or {}
    returned = frozenset((str(p), str(r)) for r, p in (state.get("returned") or {}).items())
    if "amount_minor" not in state:  # never saw the order itself (perhaps only an earlier return)
        return OrderFacts(
            order_id=order_id,
            customer_id=stated_customer_id,
            amount_minor=stated_amount_minor,
            currency=stated_currency,
            order_time_ms=stated_order_time_ms,
            delivered_at_ms=delivered_at_ms,
            returned=returned,
            recorded=False,
        )
    return OrderFacts(
        order_id=order_id,
        customer_id=str(state["customer_id"]),
        amount_minor=int(state["amount_minor"]),
        currency=str(state["currency"]),
        order_time_ms=int(state["order_time_ms"]),
        delivered_at_ms=delivered_at_ms,
        returned=returned,
    )
