"""`event_type: "payment"` on the score Lambda end to end: moto tables, the payment lane of a real
local inference server, stored and audited decisions, typed errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pydantic import ValidationError

from local.inference_server import serve
from local.stack import create_table, free_port
from returnguard.aws.feature_store import encode_item
from returnguard.payments import PaymentContext, PaymentStore, card_velocity_key
from returnguard.tables import AUDIT, DECISIONS, FEATURES, blocklist_key
from tests.integration.api.test_score_handler import call, event, load_handler
from tests.payment_model import PAYMENT_TEST_THRESHOLDS, PAYMENT_TEST_VERSION

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def history() -> dict[str, Any]:
    """C1 paid at T1 with fp_old daily for three weeks; T1 had a fraud reported a few days ago."""
    store = PaymentStore()
    t = int(NOW.timestamp() * 1000)
    for day in range(21, 0, -1):
        store.apply(PaymentContext(f"H{day}", "C1", "fp_old", "M1", "T1", t - day * 86_400_000, 4_500, "pos"))
    return store.items


@pytest.fixture(scope="module")
def handlers(payment_lane_model) -> Iterator[dict[str, ModuleType]]:
    config = json.loads((payment_lane_model / "config.json").read_text())
    server = serve(str(payment_lane_model))
    model_config = {
        "model_version": config.get("model_version"),
        "thresholds": config["thresholds"],
        "payment": {"model_version": PAYMENT_TEST_VERSION, "thresholds": PAYMENT_TEST_THRESHOLDS},
    }
    env = {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "RG_FEATURES_TABLE": "features",
        "RG_DECISIONS_TABLE": "decisions",
        "RG_AUDIT_TABLE": "audit",
        "RG_ENDPOINT_NAME": "unused",
        "RG_DECISION_ID_SECRET": "test-only-decision-id-secret-32-chars-long",
        "RG_MODEL_CONFIG": json.dumps(model_config),
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
            for key, state in history().items():
                client.put_item(TableName="features", Item=encode_item(key, state, 1))
            client.put_item(TableName="features", Item={"pk": {"S": blocklist_key("card", "fp_stolen")}})
            patch.setenv("RG_INFERENCE_URL", server.url)
            live = load_handler("score_handler_payments_live")
            patch.setenv("RG_PAYMENT_POLICY", json.dumps({"medium": 0.0}))
            cautious = load_handler("score_handler_payments_step_up_everything")
            patch.delenv("RG_PAYMENT_POLICY")
            patch.setenv("RG_INFERENCE_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
            down = load_handler("score_handler_payments_down")
            yield {"live": live, "cautious": cautious, "down": down, "dynamodb": client}
    finally:
        server.stop()
        patch.undo()


def payment(transaction_id: str, **extra: Any) -> dict[str, Any]:
    body = {
        "transaction_id": transaction_id,
        "customer_id": "C1",
        "card_fingerprint": "fp_old",
        "merchant_id": "M1",
        "terminal_id": "T1",
        "amount": 52.5,
        "currency": "EUR",
        "channel": "pos",
        "transaction_time": NOW.isoformat().replace("+00:00", "Z"),
    }
    body.update(extra)
    return {"event_type": "payment", "payment": body}


def test_a_payment_is_decided_stored_and_audited(handlers) -> None:
    status, body = call(handlers["live"], event("POST", "/v1/risk-score", payment("X-A")))
    assert status == 200, body
    assert body["transaction_id"] == "X-A" and body["model_version"] == PAYMENT_TEST_VERSION
    assert body["recommended_action"] in {"approve", "step_up_authentication", "review", "decline"}
    assert 0.0 <= body["risk_score"] <= 1.0 and not body["degraded"]
    assert body["explanation"]["source"] == "template" and body["explanation"]["key_factors"]
    status, fetched = call(handlers["live"], event("GET", f"/v1/decisions/{body['decision_id']}"))
    assert status == 200 and fetched == body
    audit = handlers["dynamodb"].query(
        TableName="audit",
        KeyConditionExpression="decision_id = :d",
        ExpressionAttributeValues={":d": {"S": body["decision_id"]}},
    )["Items"]
    assert len(audit) == 1 and audit[0]["action"]["S"] == body["recommended_action"]
    assert json.loads(audit[0]["features"]["S"])["customer_payments_30d"] == 21.0


def test_a_retry_gets_the_stored_decision_and_a_different_body_is_a_conflict(handlers) -> None:
    first = call(handlers["live"], event("POST", "/v1/risk-score", payment("X-B")))
    again = call(handlers["live"], event("POST", "/v1/risk-score", payment("X-B")))
    assert first == again
    status, body = call(handlers["live"], event("POST", "/v1/risk-score", payment("X-B", amount=99.0)))
    assert status == 409 and body["error"]["code"] == "conflict"


def test_a_blocklisted_card_is_declined_by_the_rule(handlers) -> None:
    status, body = call(
        handlers["live"], event("POST", "/v1/risk-score", payment("X-C", card_fingerprint="fp_stolen"))
    )
    assert status == 200 and body["recommended_action"] == "decline"
    assert body["rules_triggered"] == ["blocklisted"]


def test_the_deployment_policy_applies_to_payments(handlers) -> None:
    status, body = call(handlers["cautious"], event("POST", "/v1/risk-score", payment("X-D")))
    assert status == 200 and body["recommended_action"] != "approve"


def test_model_down_is_degraded_step_up_not_approval(handlers) -> None:
    status, body = call(handlers["down"], event("POST", "/v1/risk-score", payment("X-E")))
    assert status == 200 and body["degraded"] and body["recommended_action"] == "step_up_authentication"


@pytest.mark.parametrize(
    ("mutate", "status", "code", "field"),
    [
        (lambda b: b["payment"].pop("card_fingerprint"), 422, "invalid_request", "payment.card_fingerprint"),
        (
            lambda b: b["payment"].update(card_number="4111111111111111"),
            422,
            "invalid_request",
            "payment.card_number",
        ),
        (lambda b: b["payment"].update(amount="52.50"), 422, "invalid_request", "payment.amount"),
        (lambda b: b["payment"].update(channel="fax"), 422, "invalid_request", "payment.channel"),
        (
            lambda b: b["payment"].update(transaction_time=(NOW - timedelta(days=30)).isoformat()),
            422,
            "invalid_request",
            "payment.transaction_time",
        ),
        (lambda b: b.update(order={}), 422, "invalid_request", "order"),
    ],
)
def test_bad_payments_get_a_status_and_a_code(handlers, mutate, status, code, field) -> None:
    body = payment("X-F")
    mutate(body)
    got_status, got = call(handlers["live"], event("POST", "/v1/risk-score", body))
    assert (got_status, got["error"]["code"], got["error"]["field"]) == (status, code, field)


def test_a_bad_payment_policy_fails_the_cold_start_naming_it(handlers, monkeypatch) -> None:
    monkeypatch.setenv("RG_PAYMENT_POLICY", '{"declines": 1}')
    with pytest.raises(ValidationError) as failure:
        load_handler("score_handler_bad_payment_policy")
    assert "RG_PAYMENT_POLICY" in str(failure.value) and "unknown policy setting declines" in str(
        failure.value
    )


def test_a_payment_dated_ahead_does_not_hide_from_the_payments_after_it(handlers) -> None:
    # the window allows a few minutes ahead (clock skew): such a time is scored and recorded as of now,
    # as orders are; recorded at the time sent, it was in the future of every payment after it
    def pay(transaction_id: str, at: datetime) -> dict:
        body = payment(
            transaction_id,
            transaction_time=at.isoformat().replace("+00:00", "Z"),
            customer_id="C-AHEAD",
            card_fingerprint="fp_ahead",
            channel="online",
        )
        status, answer = call(handlers["live"], event("POST", "/v1/risk-score", body))
        assert status == 200, answer
        return answer

    def counted(answer: dict) -> int:
        audit = handlers["dynamodb"].query(
            TableName="audit",
            KeyConditionExpression="decision_id = :d",
            ExpressionAttributeValues={":d": {"S": answer["decision_id"]}},
        )["Items"]
        return json.loads(audit[0]["features"]["S"])["customer_payments_last_10m"]

    pay("X-AHEAD-1", datetime.now(timezone.utc) + timedelta(minutes=4, seconds=50))
    assert counted(pay("X-AHEAD-2", datetime.now(timezone.utc))) == 1


def test_two_payments_a_second_apart_trigger_velocity_before_the_stream_has_seen_either(handlers) -> None:
    # Given a customer and a card nothing has seen (no stream event, no aggregate), two payments 1 s apart
    first_time = (NOW - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    burst = {"customer_id": "C-BURST", "card_fingerprint": "fp_burst", "channel": "online"}
    status, first = call(
        handlers["live"],
        event("POST", "/v1/risk-score", payment("X-V1", transaction_time=first_time, **burst)),
    )
    assert status == 200 and "velocity" not in first["rules_triggered"]
    status, second = call(handlers["live"], event("POST", "/v1/risk-score", payment("X-V2", **burst)))
    # Then the second counts the first by customer and by card, and seed 002's velocity rule fires
    assert status == 200 and "velocity" in second["rules_triggered"]
    assert second["recommended_action"] != "approve"
    audit = handlers["dynamodb"].query(
        TableName="audit",
        KeyConditionExpression="decision_id = :d",
        ExpressionAttributeValues={":d": {"S": second["decision_id"]}},
    )["Items"]
    features = json.loads(audit[0]["features"]["S"])
    assert features["customer_payments_last_10m"] == 1 and features["card_payments_last_1h"] == 1
    assert features["customer_payments_1d"] == 0  # the aggregates still wait for the stream
    # and a retry of the second counts nothing new (one entry per transaction id, TTL set)
    assert call(handlers["live"], event("POST", "/v1/risk-score", payment("X-V2", **burst)))[1] == second
    item = handlers["dynamodb"].get_item(
        TableName="features", Key={"pk": {"S": card_velocity_key("fp_burst")}}
    )
    assert set(item["Item"]["orders"]["M"]) == {"X-V1", "X-V2"} and "expires_at" in item["Item"]
