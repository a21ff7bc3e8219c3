"""Hard rules for return requests, pure: the only way a refund is denied (`deny_refund`), never the model.

They compare the return with its original order: what the store recorded about it (the
`order#<order id>` record, returnguard.order_record: the amount paid as the order event said, which
items were already returned) and, for what the store does not see, the request's own facts (the
delivery time, from the merchant's returns system; the amount paid when the order was never
recorded). Each rule that fires is named in `rules_triggered`:

    refund_exceeds_paid     the refund asked for is above what was paid for the order
    outside_return_window   requested more than the deployment's window after delivery
    not_delivered           the order has no delivery on record
    already_returned        this item of the order was already returned (by another return id)
    blocklisted             the customer is on the blocklist
These deny the refund, and a person confirms the denial before any money is withheld. One more fact
sends the return to a person without denying it:

    order_customer_mismatch the recorded order belongs to another customer
"""

from __future__ import annotations

from dataclasses import dataclass

from returnguard.calendar import DAY_MS
from returnguard.currency import to_usd

DENY_RULES = (
    "refund_exceeds_paid",
    "outside_return_window",
    "not_delivered",
    "already_returned",
    "blocklisted",
)
REVIEW_RULES = ("order_customer_mismatch",)
DEFAULT_RETURN_WINDOW_DAYS = 30
# Amounts in different currencies are compared in USD at the configured rates; a refund within this
# share above the paid amount is rounding, not an over-refund.
CROSS_CURRENCY_TOLERANCE = 0.01


@dataclass(frozen=True)
class OrderFacts:
    """The original order: as the store recorded it (returnguard.order_record), or, never recorded, as
    the request states it (`recorded` false)."""

    order_id: str
    customer_id: str
    amount_minor: int  # what was paid, minor units of `currency`
    currency: str
    order_time_ms: int
    delivered_at_ms: int | None = None
    returned: frozenset[tuple[str, str]] = frozenset()  # (product id, return id) already returned
    recorded: bool = True


@dataclass(frozen=True)
class ReturnFacts:
    """The return request as the rules need it."""

    return_id: str
    order_id: str
    customer_id: str
    product_id: str
    refund_minor: int
    currency: str
    requested_at_ms: int


@dataclass(frozen=True)
class ReturnRuleResult:
    rules_triggered: tuple[str, ...]

    @property
    def deny(self) -> bool:
        return any(rule in DENY_RULES for rule in self.rules_triggered)

    @property
    def review(self) -> bool:
        return any(rule in REVIEW_RULES for rule in self.rules_triggered)


def refund_exceeds_paid(ret: ReturnFacts, order: OrderFacts) -> bool:
    if ret.currency == order.currency:
        return ret.refund_minor > order.amount_minor
    refund = to_usd(ret.refund_minor / 100, ret.currency)
    paid = to_usd(order.amount_minor / 100, order.currency)
    return refund > paid * (1 + CROSS_CURRENCY_TOLERANCE)


def check(
    ret: ReturnFacts,
    order: OrderFacts,
    *,
    blocklisted: bool,
    window_days: int = DEFAULT_RETURN_WINDOW_DAYS,
) -> ReturnRuleResult:
    """The rules that fire for this return, in the stable order of DENY_RULES then REVIEW_RULES."""
    fired: set[str] = set()
    if blocklisted:
        fired.add("blocklisted")
    if order.recorded and order.customer_id != ret.customer_id:
        fired.add("order_customer_mismatch")
    if refund_exceeds_paid(ret, order):
        fired.add("refund_exceeds_paid")
    if order.delivered_at_ms is None or order.delivered_at_ms > ret.requested_at_ms:
        fired.add("not_delivered")
    elif ret.requested_at_ms - order.delivered_at_ms > window_days * DAY_MS:
        fired.add("outside_return_window")
    if any(product == ret.product_id and rid != ret.return_id for product, rid in order.returned):
        fired.add("already_returned")
    return ReturnRuleResult(tuple(rule for rule in (*DENY_RULES, *REVIEW_RULES) if rule in fired))
