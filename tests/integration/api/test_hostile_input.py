# ruff: noqa: F811 - `handlers` is the score handler tests' fixture, imported to be used as one
"""Hostile and odd input to the score Lambda (issue 16): unparseable bodies, lax types, validation
and idempotency on the canonical request rather than the bytes sent."""

from __future__ import annotations

import base64
import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from pydantic import ValidationError

from returnguard.aws.feature_store import encode_item
from returnguard.currency import CURRENCIES
from tests.integration.api.test_score_handler import (  # noqa: F401
    Context,
    call,
    event,
    handlers,
    load_handler,
    order,
)
from tests.unit.api.fakes import DAY, customer_with_history

UNPARSEABLE = [
    pytest.param("[" * 1000 + "]" * 1000, id="nested-1000-deep"),
    pytest.param('{"a":' * 5000 + "1" + "}" * 5000, id="objects-5000-deep"),
    pytest.param('{"event_type": "order", "order": {"order_id": "\\ud800"}}', id="lone-surrogate"),
    pytest.param("\ufeff{}", id="byte-order-mark"),
    pytest.param("", id="empty"),
]


@pytest.mark.parametrize("body", UNPARSEABLE)
def test_a_body_that_cannot_be_parsed_is_400_with_a_code_and_no_traceback(handlers, body, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    status, answer = call(handlers["live"], event("POST", "/v1/risk-score", body))
    assert status == 400, answer
    assert answer["error"]["code"] == "malformed_json"
    assert "Traceback" not in caplog.text and "RecursionError" not in caplog.text


def test_a_body_that_is_not_utf8_is_400(handlers) -> None:
    # API Gateway hands a body it cannot pass as text to the function base64-encoded
    ev = event("POST", "/v1/risk-score")
    ev["body"] = base64.b64encode(b'{"event_type": "order", "order": {"order_id": "\xff\xfe"}}').decode()
    ev["isBase64Encoded"] = True
    status, answer = call(handlers["live"], ev)
    assert status == 400 and answer["error"]["code"] == "malformed_json", answer


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", "1499"),
        ("amount", True),
        ("amount", None),
        ("order_time", 1_700_000_000),
        ("order_id", 12345),
        ("customer_id", ["C1"]),
        ("payment_method", 1),
        ("region", False),
    ],
)
def test_types_are_strict_where_the_spec_names_one(handlers, field, value) -> None:
    body = order("ORD-TYPE")
    body["order"][field] = value
    status, answer = call(handlers["live"], event("POST", "/v1/risk-score", body))
    assert status == 422, answer
    assert answer["error"]["field"] == f"order.{field}"


def test_an_integer_amount_is_a_number(handlers) -> None:
    status, answer = call(handlers["live"], event("POST", "/v1/risk-score", order("ORD-INT", amount=1499)))
    assert status == 200, answer


def test_a_return_event_is_validated_as_a_return(handlers) -> None:
    invalid = {"event_type": "return", "order": {"amount": -1}}
    status, answer = call(handlers["live"], event("POST", "/v1/risk-score", invalid))
    assert status == 422 and answer["error"]["code"] == "invalid_request", answer
    assert {d["field"] for d in answer["error"]["details"]} == {"return", "order"}


def _same_order_written_differently(order_id: str) -> list[dict[str, Any]]:
    base = order(order_id)  # order_time 2023-11-14T22:13:20Z
    in_india = order(order_id, order_time="2023-11-15T03:43:20+05:30")
    naive = order(order_id, order_time="2023-11-14T22:13:20")  # no zone: UTC
    explicit_defaults = {**order(order_id), "locale": "en", "explain": "template"}
    padded = order(order_id, region="  KA ", amount=2499)
    nulls = order(order_id, card_fingerprint=None)
    return [base, in_india, naive, explicit_defaults, padded, nulls]


def test_equivalent_bodies_are_one_request_not_a_conflict(handlers) -> None:
    answers = [
        call(handlers["live"], event("POST", "/v1/risk-score", body))
        for body in _same_order_written_differently("ORD-CANON")
    ]
    assert [status for status, _ in answers] == [200] * len(answers), answers
    assert all(answer == answers[0][1] for _, answer in answers)
    different = call(handlers["live"], event("POST", "/v1/risk-score", order("ORD-CANON", amount=2500)))
    assert different[0] == 409


def _iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    "when",
    ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+05:00", "2999-01-01T00:00:00"],
)
def test_an_order_time_outside_the_window_is_422_naming_the_field(handlers, when) -> None:
    status, answer = call(
        handlers["live"], event("POST", "/v1/risk-score", order("ORD-WHEN", order_time=when))
    )
    assert status == 422, answer
    assert answer["error"]["code"] == "invalid_request" and answer["error"]["field"] == "order.order_time"


def test_the_order_time_window_is_a_deployment_setting(handlers, monkeypatch) -> None:
    # Given a deployment with the default window (7 days back, 5 minutes ahead)
    monkeypatch.delenv("RG_ORDER_TIME_PAST_S", raising=False)
    default = load_handler("score_handler_default_window")
    now = datetime.now(timezone.utc)

    def status(module: Any, order_id: str, when: datetime) -> int:
        return call(module, event("POST", "/v1/risk-score", order(order_id, order_time=_iso(when))))[0]

    assert status(default, "ORD-W1", now - timedelta(days=8)) == 422
    assert status(default, "ORD-W2", now - timedelta(days=6)) == 200
    assert status(default, "ORD-W3", now + timedelta(minutes=4)) == 200
    assert status(default, "ORD-W4", now + timedelta(minutes=10)) == 422
    assert (
        status(default, "ORD-W5", datetime(2023, 11, 14, tzinfo=timezone.utc)) == 422
    )  # what the fixture allows
    # When the deployment allows an hour ahead, ten minutes ahead is fine
    monkeypatch.setenv("RG_ORDER_TIME_FUTURE_S", "3600")
    lenient = load_handler("score_handler_hour_ahead")
    assert status(lenient, "ORD-W6", now + timedelta(minutes=10)) == 200
    monkeypatch.setenv("RG_ORDER_TIME_FUTURE_S", "-1")
    with pytest.raises(ValidationError, match="RG_ORDER_TIME_FUTURE_S"):
        load_handler("score_handler_bad_window")


def test_a_time_just_ahead_does_not_hide_the_customers_history(handlers, monkeypatch) -> None:
    # Given a heavy returner whose last order was yesterday
    now = datetime.now(timezone.utc)
    state = customer_with_history(orders=8, returned=5, last_order_ms=int(now.timestamp() * 1000) - DAY)
    boto3.client("dynamodb", region_name="us-east-1").put_item(
        TableName="features", Item=encode_item("customer#C-NOW", state, 1)
    )
    monkeypatch.delenv("RG_ORDER_TIME_PAST_S", raising=False)
    monkeypatch.setenv("RG_INFERENCE_URL", handlers["live"].settings.inference_url)  # the model is up
    module = load_handler("score_handler_history")
    # When the same order is placed now and as far ahead as the window allows
    answers = [
        call(module, event("POST", "/v1/risk-score", order(f"ORD-NOW-{i}", "C-NOW", order_time=_iso(when))))
        for i, when in enumerate((now, now + timedelta(minutes=4, seconds=50)))
    ]
    # Then both see the returns
    assert [s for s, _ in answers] == [200, 200]
    for _, answer in answers:
        assert any("returned 5 of the last 6" in factor for factor in answer["explanation"]["key_factors"])
    assert answers[0][1]["risk_level"] == answers[1][1]["risk_level"]


def test_currency_outside_the_spec_is_422_and_every_listed_one_is_scored(handlers) -> None:
    status, answer = call(handlers["live"], event("POST", "/v1/risk-score", order("ORD-CUR", currency="XYZ")))
    assert status == 422 and answer["error"]["field"] == "order.currency"
    for currency in CURRENCIES:
        got = call(
            handlers["live"], event("POST", "/v1/risk-score", order(f"ORD-CUR-{currency}", currency=currency))
        )
        assert got[0] == 200, got


@pytest.mark.parametrize("method", ["TRACE", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
def test_an_unknown_method_on_a_known_path_is_405_with_allow(handlers, method) -> None:
    for path, allowed in (("/v1/risk-score", "POST"), ("/v1/decisions/dec_x", "GET"), ("/v1/health", "GET")):
        if method == "HEAD" and allowed == "POST":
            continue
        result = handlers["live"].lambda_handler(event(method, path), Context())
        assert result["statusCode"] == 405, (method, path, result)
        assert json.loads(result["body"])["error"]["code"] == "method_not_allowed"
        headers = {
            **(result.get("headers") or {}),
            **{k: v[-1] for k, v in (result.get("multiValueHeaders") or {}).items()},
        }
        assert headers.get("Allow") == allowed
    result = handlers["live"].lambda_handler(event(method, "/v2/nothing"), Context())
    assert result["statusCode"] == 404
