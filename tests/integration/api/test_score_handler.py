"""The score Lambda end to end: API Gateway proxy events, moto tables, a real local inference server."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pydantic import ValidationError

from local.inference_server import serve
from local.stack import create_table, free_port
from returnguard.aws.feature_store import encode_item
from returnguard.tables import AUDIT, DECISIONS, FEATURES
from tests.unit.api.fakes import ADDRESS, T0, customer_with_history

HANDLER = Path(__file__).resolve().parents[3] / "lambdas" / "score" / "handler.py"


@dataclass
class Context:
    function_name: str = "score"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:score"
    aws_request_id: str = "req-1"


def load_handler(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, HANDLER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def handlers(trained_model) -> Iterator[dict[str, ModuleType]]:
    model_dir = trained_model[0]
    config = json.loads((Path(model_dir) / "config.json").read_text())
    server = serve(str(model_dir))
    env = {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "RG_FEATURES_TABLE": "features",
        "RG_DECISIONS_TABLE": "decisions",
        "RG_AUDIT_TABLE": "audit",
        "RG_ENDPOINT_NAME": "unused",
        "RG_ORDER_TIME_PAST_S": str(3660 * 86_400),  # the orders here are dated 2023-11-14 (T0)
        "RG_DECISION_ID_SECRET": "test-only-decision-id-secret-32-chars-long",
        "RG_MODEL_CONFIG": json.dumps(
            {"model_version": config.get("model_version"), "thresholds": config["thresholds"]}
        ),
        "POWERTOOLS_SERVICE_NAME": "returnguard",
        "POWERTOOLS_METRICS_NAMESPACE": "ReturnGuard",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    patch = pytest.MonkeyPatch()
    for key, value in env.items():
        patch.setenv(key, value)
    try:
        with mock_aws():
            client = boto3.client("dynamodb", region_name="us-east-1")
            for definition, name in ((FEATURES, "features"), (DECISIONS, "decisions"), (AUDIT, "audit")):
                create_table(client, definition, name)
            state = customer_with_history(orders=8, returned=4, last_order_ms=T0 - 86_400_000)
            client.put_item(TableName="features", Item=encode_item("customer#C1", state, 1))
            hasty = customer_with_history(orders=3, returned=0, last_order_ms=T0 - 30_000)  # 30 s ago
            client.put_item(TableName="features", Item=encode_item("customer#C2", hasty, 1))
            patch.setenv("RG_INFERENCE_URL", server.url)
            live = load_handler("score_handler_live")
            patch.setenv("RG_POLICY", json.dumps({"velocity_orders": 3}))
            strict = load_handler("score_handler_three_orders_a_minute")
            patch.delenv("RG_POLICY")
            patch.setenv("RG_INFERENCE_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
            down = load_handler("score_handler_down")
            yield {"live": live, "down": down, "three_orders_a_minute": strict}
    finally:
        server.stop()
        patch.undo()


def event(method: str, path: str, body: Any = None, content_type: str = "application/json") -> dict[str, Any]:
    raw = body if isinstance(body, str) or body is None else json.dumps(body)
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": content_type, "X-Forwarded-For": "203.0.113.9"},
        "multiValueHeaders": {"Content-Type": [content_type]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {"requestId": "api-req-1", "stage": "v1", "httpMethod": method, "path": path},
        "body": raw,
        "isBase64Encoded": False,
    }


def order(order_id: str, customer_id: str = "C1", **extra: Any) -> dict[str, Any]:
    body = {
        "order_id": order_id,
        "customer_id": customer_id,
        "product_id": "P1",
        "seller_id": "S1",
        "category": "electronics",
        "region": "KA",
        "amount": 2499.0,
        "currency": "INR",
        "payment_method": "cod",
        "delivery_address": ADDRESS,
        "order_time": "2023-11-14T22:13:20Z",
    }
    body.update(extra)
    return {"event_type": "order", "order": body}


def call(module: ModuleType, ev: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    result = module.lambda_handler(ev, Context())
    return result["statusCode"], json.loads(result["body"])


def test_happy_path_and_lookup(handlers) -> None:
    status, body = call(handlers["live"], event("POST", "/v1/risk-score", order("ORD-A")))
    assert status == 200, body
    assert not body["degraded"] and 0.0 <= body["risk_score"] <= 1.0
    assert body["recommended_action"] in {"approve", "otp_verification", "manual_review", "block"}
    assert body["explanation"]["source"] == "template" and body["model_version"] != "rules-only"
    assert "New customer: no order history" not in body["explanation"]["key_factors"]
    status, fetched = call(handlers["live"], event("GET", f"/v1/decisions/{body['decision_id']}"))
    assert status == 200 and fetched == body
    status, health = call(handlers["live"], event("GET", "/v1/health"))
    assert status == 200 and health["status"] == "ok"


def test_the_deployment_sets_how_many_orders_a_minute_are_velocity(handlers) -> None:
    # Given C2's last order 30 s before this one
    default = call(handlers["live"], event("POST", "/v1/risk-score", order("ORD-V1", customer_id="C2")))
    # When the deployment says velocity takes three orders in the minute (RG_POLICY), two do not
    strict = call(
        handlers["three_orders_a_minute"], event("POST", "/v1/risk-score", order("ORD-V2", customer_id="C2"))
    )
    assert default[0] == strict[0] == 200
    assert "velocity" in default[1]["rules_triggered"] and default[1]["risk_level"] != "low"
    assert "velocity" not in strict[1]["rules_triggered"]


@pytest.mark.parametrize(
    "policy,message",
    [
        ('{"velocity_orders": 1}', "velocity_orders must be between 2 and 100"),
        ('{"threshold": 0.5}', "unknown policy setting threshold"),
        ("[3]", "must be a JSON object"),
    ],
)
def test_a_bad_policy_fails_the_cold_start_naming_rg_policy(handlers, monkeypatch, policy, message) -> None:
    monkeypatch.setenv("RG_POLICY", policy)
    with pytest.raises(ValidationError) as failure:
        load_handler("score_handler_bad_policy")
    assert "RG_POLICY" in str(failure.value) and message in str(failure.value)


@pytest.mark.parametrize(
    "ladder,message",
    [
        ('{"ladder": {"low": "manual_review", "medium": "instant_refund"}}', "more lenient"),
        ('{"ladder": {"high": "deny_refund"}}', "deny_refund comes from hard rules only"),
        ('{"window": 30}', "unknown return policy setting window"),
        ("[3]", "must be a JSON object"),
    ],
)
def test_a_bad_refund_ladder_fails_the_cold_start_naming_rg_return_policy(
    handlers, monkeypatch, ladder, message
) -> None:
    monkeypatch.setenv("RG_RETURN_POLICY", ladder)
    with pytest.raises(ValidationError) as failure:
        load_handler("score_handler_bad_return_policy")
    assert "RG_RETURN_POLICY" in str(failure.value) and message in str(failure.value)


def test_unseen_customer(handlers) -> None:
    status, body = call(
        handlers["live"],
        event("POST", "/v1/risk-score", {**order("ORD-B", customer_id="NEW1"), "locale": "hi"}),
    )
    assert status == 200, body
    assert body["explanation"]["key_factors"][0] == "नया ग्राहक: कोई ऑर्डर इतिहास नहीं"


def test_model_down_is_degraded_not_an_error(handlers) -> None:
    status, body = call(handlers["down"], event("POST", "/v1/risk-score", order("ORD-C", amount=900_000.0)))
    assert status == 200, body
    assert body["degraded"] and body["risk_score"] is None
    assert body["rules_triggered"] == ["high_amount"] and body["recommended_action"] == "manual_review"


def test_idempotent_retry_and_conflict(handlers) -> None:
    first = call(handlers["live"], event("POST", "/v1/risk-score", order("ORD-D")))
    again = call(handlers["live"], event("POST", "/v1/risk-score", order("ORD-D")))
    assert first[0] == again[0] == 200 and first[1] == again[1]
    status, body = call(handlers["live"], event("POST", "/v1/risk-score", order("ORD-D", amount=10.0)))
    assert status == 409 and body["error"]["code"] == "conflict"


@pytest.mark.parametrize(
    ("ev", "status", "code", "field"),
    [
        (event("POST", "/v1/risk-score", "{not json"), 400, "malformed_json", None),
        (event("POST", "/v1/risk-score", "x" * (64 * 1024 + 1)), 413, "body_too_large", None),
        (
            event("POST", "/v1/risk-score", order("ORD-E"), content_type="text/plain"),
            415,
            "unsupported_media_type",
            None,
        ),
        (event("POST", "/v1/risk-score", order("ORD-F", amount=-5)), 422, "invalid_request", "order.amount"),
        (event("POST", "/v1/risk-score", {**order("ORD-G"), "debug": True}), 422, "invalid_request", "debug"),
        (  # a return event carries a `return`, not an `order`
            event("POST", "/v1/risk-score", {**order("ORD-R"), "event_type": "return"}),
            422,
            "invalid_request",
            "return",
        ),
        (
            event("POST", "/v1/risk-score", {**order("ORD-P"), "event_type": "refund"}),
            422,
            "invalid_request",
            "event_type",
        ),
        (event("GET", "/v1/decisions/dec_unknown"), 404, "not_found", "decision_id"),
    ],
)
def test_errors(handlers, ev, status, code, field) -> None:
    got, body = call(handlers["live"], ev)
    assert got == status
    assert body["error"]["code"] == code and body["error"]["field"] == field
    assert "Traceback" not in json.dumps(body)


class BrokenStore:
    def get_many(self, keys: Any) -> dict[str, Any]:
        from botocore.exceptions import EndpointConnectionError

        raise EndpointConnectionError(endpoint_url="https://dynamodb")


def test_store_down_is_503_without_traceback(handlers, monkeypatch) -> None:
    monkeypatch.setattr(handlers["down"], "features", BrokenStore())
    status, body = call(handlers["down"], event("POST", "/v1/risk-score", order("ORD-H")))
    assert status == 503 and body["error"]["code"] == "unavailable"
    assert "Traceback" not in json.dumps(body)


class ThrottledStore:
    def get_many(self, keys: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "x"}}, "BatchGetItem"
        )


def test_a_throttled_store_is_429_not_503(handlers, monkeypatch) -> None:
    monkeypatch.setattr(handlers["down"], "features", ThrottledStore())
    status, body = call(handlers["down"], event("POST", "/v1/risk-score", order("ORD-T")))
    assert status == 429 and body["error"]["code"] == "throttled"


def test_every_bad_field_is_named(handlers) -> None:
    bad = order("ORD-M", amount=-5)
    bad["order"]["currency"] = "rupees"
    bad["order"].pop("region")
    status, body = call(handlers["live"], event("POST", "/v1/risk-score", bad))
    assert status == 422
    named = {d["field"] for d in body["error"]["details"]}
    assert named == {"order.amount", "order.currency", "order.region"}
    assert body["error"]["field"] in named and "2 more" in body["error"]["message"]
