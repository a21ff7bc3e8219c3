"""Hard rules of return requests: each fires exactly when its fact holds."""

from dataclasses import replace

import pytest

from returnguard.calendar import DAY_MS
from returnguard.returns_rules import OrderFacts, ReturnFacts, check

T0 = 1_780_000_000_000
ORDER = OrderFacts(
    order_id="O1",
    customer_id="C1",
    amount_minor=149_900,
    currency="INR",
    order_time_ms=T0,
    delivered_at_ms=T0 + 3 * DAY_MS,
)
RETURN = ReturnFacts(
    return_id="R1",
    order_id="O1",
    customer_id="C1",
    product_id="P1",
    refund_minor=149_900,
    currency="INR",
    requested_at_ms=T0 + 10 * DAY_MS,
)


def test_a_clean_return_fires_nothing() -> None:
    result = check(RETURN, ORDER, blocklisted=False)
    assert result.rules_triggered == () and not result.deny and not result.review


@pytest.mark.parametrize(
    ("ret", "order", "blocklisted", "fired"),
    [
        (replace(RETURN, refund_minor=149_901), ORDER, False, ("refund_exceeds_paid",)),
        (replace(RETURN, refund_minor=1_900, currency="USD"), ORDER, False, ("refund_exceeds_paid",)),
        (replace(RETURN, refund_minor=1_800, currency="USD"), ORDER, False, ()),
        (replace(RETURN, requested_at_ms=T0 + 33 * DAY_MS + 1), ORDER, False, ("outside_return_window",)),
        (replace(RETURN, requested_at_ms=T0 + 33 * DAY_MS), ORDER, False, ()),
        (RETURN, replace(ORDER, delivered_at_ms=None), False, ("not_delivered",)),
        (RETURN, replace(ORDER, delivered_at_ms=T0 + 11 * DAY_MS), False, ("not_delivered",)),
        (RETURN, replace(ORDER, returned=frozenset({("P1", "R0")})), False, ("already_returned",)),
        (RETURN, replace(ORDER, returned=frozenset({("P1", "R1")})), False, ()),  # its own retry
        (RETURN, replace(ORDER, returned=frozenset({("P2", "R0")})), False, ()),  # another item
        (RETURN, ORDER, True, ("blocklisted",)),
    ],
)
def test_each_deny_rule_fires_on_its_fact(
    ret: ReturnFacts, order: OrderFacts, blocklisted: bool, fired: tuple[str, ...]
) -> None:
    result = check(ret, order, blocklisted=blocklisted)
    assert result.rules_triggered == fired
    assert result.deny == bool(fired) and not result.review


def test_the_window_is_the_deployments() -> None:
    late = replace(RETURN, requested_at_ms=T0 + 3 * DAY_MS + 8 * DAY_MS)
    assert check(late, ORDER, blocklisted=False, window_days=7).rules_triggered == ("outside_return_window",)
    assert check(late, ORDER, blocklisted=False, window_days=8).rules_triggered == ()


def test_a_recorded_order_of_another_customer_goes_to_a_person_without_denying() -> None:
    other = check(RETURN, replace(ORDER, customer_id="C2"), blocklisted=False)
    assert (other.rules_triggered, other.deny, other.review) == (("order_customer_mismatch",), False, True)
    # the request's own statement of the order is not a record: nothing to compare against
    stated = check(RETURN, replace(ORDER, customer_id="C2", recorded=False), blocklisted=False)
    assert stated.rules_triggered == ()


def test_several_rules_are_named_in_a_stable_order() -> None:
    ret = replace(RETURN, refund_minor=10**9, requested_at_ms=T0 + 90 * DAY_MS)
    assert check(ret, ORDER, blocklisted=True).rules_triggered == (
        "refund_exceeds_paid",
        "outside_return_window",
        "blocklisted",
    )
