"""The score handler with Bedrock narratives on: Converse on a Stubber, tables on moto, the real
local inference server for the score."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from local.inference_server import serve
from local.stack import create_table
from returnguard.aws.feature_store import blocklist_key, encode_item
from returnguard.tables import AUDIT, DECISIONS, EXPLANATIONS, FEATURES
from tests.integration.api.test_score_handler import call, event, load_handler, order
from tests.unit.api.fakes import ADDRESS, T0, FakeModel, customer_with_history
from tests.unit.api.test_narrative import GOOD, converse_reply


@pytest.fixture(scope="module")
def handler(trained_model) -> Iterator[ModuleType]:
    config = json.loads((Path(trained_model[0]) / "config.json").read_text())
    server = serve(str(trained_model[0]))
    patch = pytest.MonkeyPatch()
    env = {
        "AWS_DEFAULT_REGION": "us-east-1",
        "RG_FEATURES_TABLE": "features",
        "RG_DECISIONS_TABLE": "decisions",
        "RG_AUDIT_TABLE": "audit",
        "RG_EXPLANATIONS_TABLE": "explanations",
        "RG_BEDROCK_MODEL_ID": "us.amazon.nova-lite-v1:0",
        "RG_INFERENCE_URL": server.url,
        "RG_ORDER_TIME_PAST_S": str(3660 * 86_400),  # the orders here are dated 2023-11-14
        "RG_DECISION_ID_SECRET": "test-only-decision-id-secret-32-chars-long",
        "RG_MODEL_CONFIG": json.dumps(
            {"model_version": config["model_version"], "thresholds": config["thresholds"]}
        ),
        "POWERTOOLS_SERVICE_NAME": "returnguard",
        "POWERTOOLS_METRICS_NAMESPACE": "ReturnGuard",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    for key, value in env.items():
        patch.setenv(key, value)
    try:
        with mock_aws():
            client = boto3.client("dynamodb", region_name="us-east-1")
            for definition in (FEATURES, DECISIONS, AUDIT, EXPLANATIONS):
                create_table(client, definition, definition.logical_name)
            state = customer_with_history(orders=8, returned=4, last_order_ms=T0 - 86_400_000)
            client.put_item(TableName="features", Item=encode_item("customer#C1", state, 1))
            clean = customer_with_history(orders=12, returned=0, last_order_ms=T0 - 86_400_000)
            client.put_item(TableName="features", Item=encode_item("customer#C2", clean, 1))
            client.put_item(TableName="features", Item=encode_item(blocklist_key("customer", "C666"), {}, 1))
            yield load_handler("score_handler_narrative")
    finally:
        patch.undo()
        server.stop()


def converse_params(module: ModuleType) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    module.narrator._client.meta.events.register(
        "provide-client-params.bedrock-runtime.Converse", lambda params, **_: sent.append(dict(params))
    )
    return sent


def test_narrative_on_request_comes_from_bedrock_without_pii(handler) -> None:
    sent = converse_params(handler)
    with Stubber(handler.narrator._client) as stub:
        stub.add_response("converse", converse_reply(json.dumps(GOOD)))
        # Over 5,000 USD: the hard rule holds the order for review whatever the model scores, so the
        # stubbed reply ("being verified") matches the action and the checks let it through.
        request = {**order("NAR-1", card_fingerprint="fp_9f8e7d", amount=900000.0), "explain": "narrative"}
        status, body = call(handler, event("POST", "/v1/risk-score", request))
    assert status == 200, body
    assert (
        body["explanation"]["source"] == "bedrock" and body["explanation"]["narrative"] == GOOD["narrative"]
    )
    assert body["customer_message"] == GOOD["customer_message"]
    assert body["explanation"]["key_factors"]  # the template's factors stay
    prompt = json.dumps(sent, ensure_ascii=False)
    for private in ("NAR-1", 'C1"', ADDRESS, "fp_9f8e7d", "P1", "S1"):
        assert private not in prompt
    status, stored = call(handler, event("GET", f"/v1/decisions/{body['decision_id']}"))
    assert stored["explanation"]["source"] == "bedrock"


def test_a_critical_decision_gets_a_narrative_unasked(handler) -> None:
    with Stubber(handler.narrator._client) as stub:
        stub.add_response("converse", converse_reply(json.dumps(GOOD)))
        status, body = call(handler, event("POST", "/v1/risk-score", order("NAR-2", customer_id="C666")))
    assert status == 200 and body["risk_level"] == "critical"
    assert body["explanation"]["source"] == "bedrock"


def test_bedrock_failure_keeps_the_template_and_counts_it(handler, capsys, caplog) -> None:
    with Stubber(handler.narrator._client) as stub:
        stub.add_client_error("converse", service_error_code="ThrottlingException", http_status_code=429)
        request = {**order("NAR-3", amount=17.0), "explain": "narrative", "locale": "hi"}
        status, body = call(handler, event("POST", "/v1/risk-score", request))
    assert status == 200 and body["explanation"]["source"] == "template"
    assert body["explanation"]["narrative"] is None
    assert '"ExplanationFallback"' in capsys.readouterr().out  # the EMF metric the dashboard plots
    reasons = [getattr(r, "reason", None) for r in caplog.records if r.getMessage() == "narrative fallback"]
    assert reasons == ["throttled"]


def test_a_low_risk_template_request_does_not_call_bedrock(handler, monkeypatch) -> None:
    monkeypatch.setattr(handler, "model", FakeModel(0.001))  # the gate is under test, not the model
    sent = converse_params(handler)
    request = order("NAR-4", customer_id="C2", amount=300.0, payment_method="card")
    status, body = call(handler, event("POST", "/v1/risk-score", request))
    assert status == 200 and body["risk_level"] == "low"
    assert body["explanation"]["source"] == "template" and sent == []


def test_an_output_that_fails_a_check_keeps_the_template_and_counts_the_reason(
    handler, capsys, caplog
) -> None:
    # Given Bedrock answers a review or block decision with "confirmed", when the order is scored,
    # then the shopper reads the template's message and the fallback metric carries the reason.
    bad = {**GOOD, "customer_message": "Good news: your order is confirmed and will ship today."}
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    for item in dynamodb.scan(TableName="explanations")["Items"]:  # earlier tests cached a good answer
        dynamodb.delete_item(TableName="explanations", Key={"cache_key": item["cache_key"]})
    with Stubber(handler.narrator._client) as stub:
        stub.add_response("converse", converse_reply(json.dumps(bad)))
        request = {**order("NAR-5", customer_id="C666"), "explain": "narrative"}
        status, body = call(handler, event("POST", "/v1/risk-score", request))
    assert status == 200 and body["recommended_action"] in ("manual_review", "block")
    assert body["explanation"]["source"] == "template" and "confirmed" not in body["customer_message"]
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "ExplanationFallback" in line]
    (document,) = emf
    assert document["reason"] == "contradicts_action"
    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"], ["service", "reason"]]
    reasons = [getattr(r, "reason", None) for r in caplog.records if r.getMessage() == "narrative fallback"]
    assert reasons == ["contradicts_action"]


def _boto_clients(module: ModuleType) -> list[Any]:
    """Every boto3 client the handler module holds, directly or in one of its objects."""
    from botocore.client import BaseClient

    found: dict[int, Any] = {}
    for value in vars(module).values():
        if isinstance(value, (ModuleType, type)):
            continue
        for candidate in (value, *getattr(value, "__dict__", {}).values()):
            if isinstance(candidate, BaseClient):
                found[id(candidate)] = candidate
    return list(found.values())


def test_every_aws_client_a_request_calls_is_bounded_and_on_the_budget(handler) -> None:
    # issue 16 item 2: boto3's defaults (60 s reads, retried) let a frozen store hang a POST for minutes
    from returnguard.aws.clients import DECISION_BUDGET_S, DYNAMODB

    clients = _boto_clients(handler)
    services = sorted(c.meta.service_model.service_name for c in clients)
    assert services == ["bedrock-runtime", "dynamodb"]  # the model is the local server here (HttpModel)
    assert {id(c) for c in clients} == {id(c) for c in handler.budget.clients}
    for client in clients:
        config = client.meta.config
        assert config.connect_timeout <= 1 and config.read_timeout <= DECISION_BUDGET_S / 2, client
        # attempts in all, first one included (botocore's `max_attempts` counts retries only)
        attempts = {"dynamodb": DYNAMODB.max_attempts, "bedrock-runtime": 1}
        assert config.retries["total_max_attempts"] == attempts[client.meta.service_model.service_name]
