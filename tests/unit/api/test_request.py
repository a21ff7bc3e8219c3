"""The request model as a contract: strict types, the order-time window, the accepted currencies, and
the canonical form idempotency hashes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from returnguard.aws.decisions import body_hash
from returnguard.currency import CURRENCIES, DEFAULT_RATES_PER_USD
from returnguard.schemas import OrderTimeOutOfWindow, OrderTimeWindow, RiskScoreRequest
from stacks.request_schema import RISK_SCORE_REQUEST

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)


def body(**order: Any) -> dict[str, Any]:
    fields = {
        "order_id": "O1",
        "customer_id": "C1",
        "product_id": "P1",
        "region": "KA",
        "amount": 2499.0,
        "currency": "INR",
        "payment_method": "cod",
        "delivery_address": "12 MG Road",
        "order_time": "2026-11-30T08:00:00Z",
    }
    fields.update(order)
    return {"event_type": "order", "order": fields}


@pytest.mark.parametrize(
    ("field", "value"),
    [("amount", "1499"), ("amount", True), ("order_time", 1_764_489_600), ("order_id", 7), ("region", True)],
)
def test_lax_coercions_are_refused(field, value) -> None:
    with pytest.raises(ValidationError) as failure:
        RiskScoreRequest.model_validate(body(**{field: value}))
    assert failure.value.errors()[0]["loc"] == ("order", field)


def test_the_window_holds_its_edges() -> None:
    window = OrderTimeWindow(past=timedelta(days=7), future=timedelta(minutes=5))
    window.check(NOW - timedelta(days=7), NOW)
    window.check(NOW + timedelta(minutes=5), NOW)
    for outside in (NOW - timedelta(days=7, seconds=1), NOW + timedelta(minutes=5, seconds=1)):
        with pytest.raises(OrderTimeOutOfWindow, match="within 7 days before and 5 minutes after"):
            window.check(outside, NOW)


@given(st.datetimes(timezones=st.timezones()))
def test_any_time_is_either_inside_the_window_or_refused_never_an_overflow(when) -> None:
    window = OrderTimeWindow()
    try:
        request = RiskScoreRequest.model_validate(body(order_time=when.isoformat()))
    except ValidationError:
        return  # e.g. 0001-01-01T00:00:00+05:00, before year 1 in UTC
    order_time = request.order.order_time
    assert order_time.utcoffset() == timedelta(0)
    inside = NOW - window.past <= order_time <= NOW + window.future
    try:
        window.check(order_time, NOW)
        assert inside
    except OrderTimeOutOfWindow:
        assert not inside


def test_the_spec_lists_the_currencies_the_server_converts() -> None:
    order = RiskScoreRequest.model_json_schema()["$defs"]["Order"]
    assert order["properties"]["currency"]["enum"] == list(CURRENCIES) == list(DEFAULT_RATES_PER_USD)
    orders, returns, payments = RISK_SCORE_REQUEST["oneOf"]
    assert orders["properties"]["order"]["properties"]["currency"]["enum"] == list(CURRENCIES)
    assert returns["properties"]["return"]["properties"]["currency"]["enum"] == list(CURRENCIES)
    assert payments["properties"]["payment"]["properties"]["currency"]["enum"] == list(CURRENCIES)
    with pytest.raises(ValidationError):
        RiskScoreRequest.model_validate(body(currency="XYZ"))


def test_equivalent_requests_hash_the_same_and_different_ones_do_not() -> None:
    base = body_hash(RiskScoreRequest.model_validate(body()))
    same = [
        body(order_time="2026-11-30T13:30:00+05:30"),
        body(order_time="2026-11-30T08:00:00"),
        body(order_time="2026-11-30T08:00:00.000Z"),
        body(amount=2499),
        body(region=" KA "),
        body(card_fingerprint=None, seller_id=None),
        {**body(), "locale": "en", "explain": "template"},
    ]
    assert [body_hash(RiskScoreRequest.model_validate(b)) for b in same] == [base] * len(same)
    different = [body(amount=2499.5), body(order_time="2026-11-30T08:00:01Z"), {**body(), "locale": "hi"}]
    assert base not in {body_hash(RiskScoreRequest.model_validate(b)) for b in different}


def test_a_retry_without_order_time_hashes_the_same() -> None:
    first = body()
    del first["order"]["order_time"]
    assert body_hash(RiskScoreRequest.model_validate(first)) == body_hash(
        RiskScoreRequest.model_validate(first)
    )
