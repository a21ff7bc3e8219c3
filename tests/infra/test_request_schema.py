"""API Gateway's request model accepts and rejects exactly what the Lambda's pydantic model does."""

from __future__ import annotations

import copy

import jsonschema
import pytest
from pydantic import ValidationError

from returnguard.payment_scoring import PaymentRiskRequest
from returnguard.schemas import ReturnScoreRequest, RiskScoreRequest
from stacks.request_schema import RISK_SCORE_REQUEST
from tests.unit.returns.requests import body

GOOD = {
    "event_type": "order",
    "order": {
        "order_id": "O1",
        "customer_id": "C1",
        "product_id": "P1",
        "region": "MH",
        "amount": 1299.0,
        "currency": "INR",
        "payment_method": "cod",
        "delivery_address": "12 MG Road, Pune",
    },
}


RETURN = body()


def variants():
    yield "minimal order", GOOD
    yield (
        "all optional fields",
        {
            **GOOD,
            "locale": "hi",
            "explain": "narrative",
            "order": {
                **GOOD["order"],
                "seller_id": "S1",
                "category": "fashion",
                "card_fingerprint": "fp",
                "order_time": "2025-10-20T10:00:00Z",
            },
        },
    )
    yield "explicit nulls", {**GOOD, "order": {**GOOD["order"], "seller_id": None, "card_fingerprint": None}}
    for field in ("order_id", "region", "delivery_address", "amount", "payment_method"):
        body = copy.deepcopy(GOOD)
        del body["order"][field]
        yield f"missing {field}", body
    yield "zero amount", {**GOOD, "order": {**GOOD["order"], "amount": 0}}
    yield "lower-case currency", {**GOOD, "order": {**GOOD["order"], "currency": "inr"}}
    yield "unknown payment", {**GOOD, "order": {**GOOD["order"], "payment_method": "barter"}}
    yield "extra field", {**GOOD, "order": {**GOOD["order"], "coupon": "X"}}
    yield "extra top-level field", {**GOOD, "debug": True}
    yield "unknown locale", {**GOOD, "locale": "fr"}
    yield "boolean explain", {**GOOD, "explain": True}
    yield "unknown event type", {**GOOD, "event_type": "refund"}
    yield "empty id", {**GOOD, "order": {**GOOD["order"], "order_id": ""}}
    yield "a return", RETURN
    yield (
        "a return with nulls",
        {**RETURN, "return": {**RETURN["return"], "reason": None, "delivered_at": None}},
    )
    yield "a return with an order", {**RETURN, "order": GOOD["order"]}
    yield "an order named a return", {**GOOD, "event_type": "return"}
    yield "a return's reason over 1000", {**RETURN, "return": {**RETURN["return"], "reason": "x" * 1001}}
    yield "a return's unknown item field", {**RETURN, "return": {**RETURN["return"], "items": [{"sku": "1"}]}}
    yield (
        "a return's zero quantity",
        {
            **RETURN,
            "return": {**RETURN["return"], "items": [{"product_id": "P1", "quantity": 0}]},
        },
    )
    for field in ("return_id", "refund_amount", "reason_code", "return_method", "order_time"):
        body = copy.deepcopy(RETURN)
        del body["return"][field]
        yield f"a return missing {field}", body


def payment_variants():
    yield "minimal payment", PAYMENT
    yield (
        "payment with time",
        {**PAYMENT, "payment": {**PAYMENT["payment"], "transaction_time": "2026-01-02T10:00:00Z"}},
    )
    yield "payment with an order", {**PAYMENT, "order": GOOD["order"]}
    yield "order event with a payment", {**GOOD, "payment": PAYMENT["payment"]}
    yield "payment with a card number", {**PAYMENT, "payment": {**PAYMENT["payment"], "card_number": "4111"}}
    yield "payment amount as text", {**PAYMENT, "payment": {**PAYMENT["payment"], "amount": "5"}}
    yield "unknown channel", {**PAYMENT, "payment": {**PAYMENT["payment"], "channel": "fax"}}
    for field in ("transaction_id", "card_fingerprint", "terminal_id", "currency"):
        body = copy.deepcopy(PAYMENT)
        del body["payment"][field]
        yield f"payment missing {field}", body


PAYMENT = {
    "event_type": "payment",
    "payment": {
        "transaction_id": "X1",
        "customer_id": "C1",
        "card_fingerprint": "fp_1",
        "merchant_id": "M1",
        "terminal_id": "T1",
        "amount": 52.5,
        "currency": "EUR",
        "channel": "online",
    },
}
CASES = [*variants(), *payment_variants()]


@pytest.mark.parametrize(("case", "body"), CASES, ids=[c for c, _ in CASES])
def test_gateway_and_lambda_agree(case, body):
    gateway_accepts = jsonschema.Draft4Validator(RISK_SCORE_REQUEST).is_valid(body)
    kinds = {"return": ReturnScoreRequest, "payment": PaymentRiskRequest}
    model = kinds.get(body.get("event_type"), RiskScoreRequest)  # the handler's dispatch
    try:
        model.model_validate(body)
        lambda_accepts = True
    except ValidationError:
        lambda_accepts = False
    assert gateway_accepts == lambda_accepts, case


def test_schema_is_draft4_without_references():
    assert RISK_SCORE_REQUEST["$schema"] == "http://json-schema.org/draft-04/schema#"
    assert "$ref" not in str(RISK_SCORE_REQUEST) and "$defs" not in RISK_SCORE_REQUEST
    jsonschema.Draft4Validator.check_schema(RISK_SCORE_REQUEST)
