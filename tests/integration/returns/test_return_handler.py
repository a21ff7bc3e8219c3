"""Return requests through the score Lambda: proxy events, moto tables, the real local inference server
serving one archive with both models, Bedrock on a Stubber."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from local.inference_server import serve
from local.stack import create_table
from returnguard.aws.feature_store import encode_item
from returnguard.tables import AUDIT, DECISIONS, EXPLANATIONS, FEATURES, blocklist_key
from tests.integration.api.test_score_handler import call, event, load_handler, order
from tests.return_model import RETURN_TEST_VERSION
from tests.unit.api.fakes import customer_with_history
from tests.unit.api.test_narrative import converse_reply
from tests.unit.returns.injection_corpus import CORPUS
from tests.unit.returns.requests import body

SECRET = "test-only-decision-id-secret-32-chars-long"


def _env(model_dir: Path, url: str, with_return_model: bool = True) -> dict[str, str]:
    config = json.loads((model_dir / "config.json").read_text())
    serving: dict[str, Any] = {"model_version": config["model_version"], "thresholds": config["thresholds"]}
    if with_return_model:
        returned = json.loads((model_dir / "return" / "config.json").read_text())
        serving["return"] = {"model_version": returned["model_version"], "thresholds": returned["thresholds"]}
    return {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "RG_FEATURES_TABLE": "features",
        "RG_DECISIONS_TABLE": "decisions",
        "RG_AUDIT_TABLE": "audit",
        "RG_ENDPOINT_NAME": "unused",
        "RG_INFERENCE_URL": url,
        "RG_ORDER_TIME_PAST_S": str(3660 * 86_400),  # requests here are dated 2023 to 2025
        "RG_DECISION_ID_SECRET": SECRET,
        "RG_MODEL_CONFIG": json.dumps(serving),
        # as `make model` packs it, and the api stack ships it inside the function
        "RG_RETURN_FALLBACK_MODEL": str(model_dir / "return" / "fallback_model.json"),
        "POWERTOOLS_SERVICE_NAME": "returnguard",
        "POWERTOOLS_METRICS_NAMESPACE": "ReturnGuard",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }


@pytest.fixture(scope="module")
def lambdas(two_lane_model) -> Iterator[dict[str, Any]]:
    server = serve(str(two_lane_model))
    patch = pytest.MonkeyPatch()
    for key, value in _env(Path(two_lane_model), server.url).items():
        patch.setenv(key, value)
    try:
        with mock_aws():
            client = boto3.client("dynamodb", region_name="us-east-1")
            for definition in (FEATURES, DECISIONS, AUDIT, EXPLANATIONS):
                create_table(client, definition, definition.logical_name)
            history = customer_with_history(orders=8, returned=4, last_order_ms=1_735_000_000_000)
            client.put_item(TableName="features", Item=encode_item("customer#C1", history, 1))
            client.put_item(TableName="features", Item=encode_item(blocklist_key("customer", "C666"), {}, 1))
            plain = load_handler("score_handler_returns")
            patch.setenv("RG_MODEL_CONFIG", _env(Path(two_lane_model), server.url, False)["RG_MODEL_CONFIG"])
            no_return_model = load_handler("score_handler_no_return_model")
            patch.setenv("RG_MODEL_CONFIG", _env(Path(two_lane_model), server.url)["RG_MODEL_CONFIG"])
            patch.setenv("RG_EXPLANATIONS_TABLE", "explanations")
            patch.setenv("RG_BEDROCK_MODEL_ID", "us.amazon.nova-lite-v1:0")
            patch.setenv("RG_BEDROCK_GUARDRAIL_ID", "gr-returns")
            patch.setenv("RG_BEDROCK_GUARDRAIL_VERSION", "1")
            narrated = load_handler("score_handler_returns_narrated")
            yield {
                "plain": plain,
                "no_return_model": no_return_model,
                "narrated": narrated,
                "dynamodb": client,
            }
    finally:
        patch.undo()
        server.stop()


def post(module: ModuleType, payload: Any) -> tuple[int, dict[str, Any]]:
    return call(module, event("POST", "/v1/risk-score", payload))


def test_a_return_is_scored_by_the_return_model_stored_and_audited(lambdas) -> None:
    status, answer = post(lambdas["plain"], body(return_id="RH-1", order_id="OH-1"))
    assert status == 200, answer
    assert (answer["return_id"], answer["order_id"], answer["model_version"]) == (
        "RH-1",
        "OH-1",
        RETURN_TEST_VERSION,
    )
    assert answer["recommended_action"] in (
        "instant_refund",
        "refund_after_pickup_inspection",
        "photo_or_video_proof",
        "manual_review",
    )
    assert 0 <= answer["risk_score"] <= 1 and answer["explanation"]["key_factors"]
    assert {"risk_level", "confidence", "customer_message", "degraded", "timestamp"} <= set(answer)
    status, stored = call(lambdas["plain"], event("GET", f"/v1/decisions/{answer['decision_id']}"))
    assert status == 200 and stored == answer
    audit = lambdas["dynamodb"].query(
        TableName="audit",
        KeyConditionExpression="decision_id = :d",
        ExpressionAttributeValues={":d": {"S": answer["decision_id"]}},
    )["Items"]
    assert [item["action"]["S"] for item in audit] == [answer["recommended_action"]]
    assert "reason_text_length" in json.loads(audit[0]["features"]["S"])


def test_the_same_return_again_is_the_stored_decision_and_another_body_is_a_conflict(lambdas) -> None:
    first = post(lambdas["plain"], body(return_id="RH-2", order_id="OH-2"))[1]
    # the same request written otherwise (return_date in +05:30, explicit defaults): the stored answer
    again = body(
        return_id="RH-2",
        order_id="OH-2",
        return_date="2025-01-10T05:30:00+05:30",
        locale="en",
        explain="template",
    )
    assert post(lambdas["plain"], again) == (200, first)
    status, answer = post(lambdas["plain"], body(return_id="RH-2", order_id="OH-2", refund_amount=10.0))
    assert status == 409
    assert answer["error"] == {
        "code": "conflict",
        "message": "this return was already scored with a different request",
        "field": "return.return_id",
    }


def test_a_return_dated_ahead_is_scored_as_of_now_not_past_its_window(lambdas) -> None:
    # the window allows a few minutes ahead (clock skew): such a return is scored as of now, as orders and
    # payments are; scored at the time sent, a return inside its window now was denied as outside it
    from returnguard.returns_rules import DEFAULT_RETURN_WINDOW_DAYS

    now = datetime.now(timezone.utc)
    delivered = now - timedelta(days=DEFAULT_RETURN_WINDOW_DAYS) + timedelta(minutes=1)
    sent = (now + timedelta(minutes=4, seconds=50)).isoformat().replace("+00:00", "Z")
    ahead = body(
        return_id="RH-AHEAD",
        order_id="OH-AHEAD",
        return_date=sent,
        delivered_at=delivered.isoformat().replace("+00:00", "Z"),
        order_time=(delivered - timedelta(days=3)).isoformat().replace("+00:00", "Z"),
    )
    status, answer = post(lambdas["plain"], ahead)
    assert status == 200, answer
    assert "outside_return_window" not in answer["rules_triggered"]
    assert answer["recommended_action"] != "deny_refund"
    assert post(lambdas["plain"], ahead) == (200, answer)  # the stored request keeps the time sent


def test_the_order_scored_first_is_what_its_returns_are_checked_against(lambdas) -> None:
    scored = order("OH-3", amount=1200.0, order_time="2025-01-01T00:00:00Z")
    assert post(lambdas["plain"], scored)[0] == 200
    # the request says 1,999 was paid; the order the API decided says 1,200
    status, answer = post(lambdas["plain"], body(return_id="RH-3a", order_id="OH-3", refund_amount=1500.0))
    assert status == 200 and answer["recommended_action"] == "deny_refund", answer
    assert answer["rules_triggered"] == ["refund_exceeds_paid"] and answer["review_required"] is True
    assert answer["risk_level"] == "critical"
    ok = post(lambdas["plain"], body(return_id="RH-3b", order_id="OH-3", refund_amount=1200.0))[1]
    assert ok["rules_triggered"] == ["already_returned"]  # RH-3a asked for the same item seconds ago


def test_order_records_expire_once_no_return_can_be_in_its_window(lambdas) -> None:
    from returnguard.aws.order_records import DELIVERY_ALLOWANCE_DAYS
    from returnguard.order_record import order_record_key
    from returnguard.returns_rules import DEFAULT_RETURN_WINDOW_DAYS

    client = boto3.client("dynamodb", region_name="us-east-1")

    def record(order_id: str) -> dict[str, Any]:
        return client.get_item(TableName="features", Key={"pk": {"S": order_record_key(order_id)}})["Item"]

    assert post(lambdas["plain"], order("OH-TTL", order_time="2025-01-01T00:00:00Z"))[0] == 200
    keep = (DEFAULT_RETURN_WINDOW_DAYS + DELIVERY_ALLOWANCE_DAYS) * 86_400
    placed = 1_735_689_600  # 2025-01-01T00:00:00Z
    assert int(record("OH-TTL")["expires_at"]["N"]) == placed + keep
    assert post(lambdas["plain"], body(return_id="RH-TTL", order_id="OH-TTL", refund_amount=10.0))[0] == 200
    assert int(record("OH-TTL")["expires_at"]["N"]) == placed + keep  # a return does not move it
    # a return of an order the API never scored: kept a window from when the return was decided
    assert (
        post(lambdas["plain"], body(return_id="RH-TTL2", order_id="OH-NEVER", refund_amount=10.0))[0] == 200
    )
    assert int(record("OH-NEVER")["expires_at"]["N"]) >= int(time.time()) + keep - 60


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"reason": "x" * 1001}, "return.reason"),
        ({"currency": "XYZ"}, "return.currency"),
        ({"refund_amount": -1}, "return.refund_amount"),
        ({"reason_code": "free_money"}, "return.reason_code"),
        ({"return_method": "teleport"}, "return.return_method"),
        ({"return_date": "1999-01-01T00:00:00Z"}, "return.return_date"),
        ({"debug": True}, "return.debug"),
    ],
)
def test_every_bad_return_is_a_422_naming_the_field(lambdas, changes, field) -> None:
    status, answer = post(lambdas["plain"], body(return_id="RH-BAD", **changes))
    assert status == 422 and answer["error"]["code"] == "invalid_request", answer
    assert answer["error"]["field"] == field
    assert "xxxxxxxxxx" not in json.dumps(answer)  # the text sent is never echoed


def test_no_return_model_answering_the_return_fallback_scores_degraded_never_an_instant_refund(
    lambdas,
) -> None:
    status, answer = post(lambdas["no_return_model"], body(return_id="RH-5", order_id="OH-5"))
    assert status == 200 and answer["degraded"] is True, answer
    assert answer["model_version"] == f"{RETURN_TEST_VERSION}-fallback" and 0 <= answer["risk_score"] <= 1
    assert answer["explanation"]["key_factors"]
    assert answer["recommended_action"] != "instant_refund"


def test_the_injection_corpus_through_the_api(lambdas, capsys) -> None:
    """Every attack gets the decision the same request with a harmless text of the same features gets;
    none is echoed in the answer or written to the logs."""
    from tests.unit.returns.benign import benign_twin

    outcomes = []
    for i, attack in enumerate(CORPUS):
        twin = benign_twin(attack, "size_fit")
        attacked = post(
            lambdas["plain"], body(return_id=f"RH-INJ-{i}", order_id=f"OH-INJ-{i}", reason=attack)
        )[1]
        harmless = post(
            lambdas["plain"], body(return_id=f"RH-TWIN-{i}", order_id=f"OH-TWIN-{i}", reason=twin)
        )[1]
        keep = ("risk_score", "risk_level", "recommended_action", "rules_triggered", "explanation")
        assert {k: attacked[k] for k in keep} == {k: harmless[k] for k in keep}, attack
        said = json.dumps([attacked["explanation"], attacked["customer_message"]], ensure_ascii=False)
        assert attack.strip()[:24] not in said
        outcomes.append(attacked["recommended_action"])
    logs = capsys.readouterr()
    for attack in CORPUS:
        assert attack.strip()[:24] not in logs.out + logs.err
    assert len(outcomes) == len(CORPUS)


def test_bedrock_gets_the_reason_only_inside_guard_content(lambdas) -> None:
    module = lambdas["narrated"]
    sent: list[dict[str, Any]] = []
    module.narrator._client.meta.events.register(
        "provide-client-params.bedrock-runtime.Converse", lambda params, **_: sent.append(dict(params))
    )
    attack = CORPUS[0]
    reply = {
        "narrative": "The request came shortly after delivery; check the item before the refund.",
        "customer_message": "We are checking your request and will update you shortly.",
    }
    with Stubber(module.narrator._client) as stub:
        stub.add_response("converse", converse_reply(json.dumps(reply)))
        status, answer = post(
            module, body(return_id="RH-NAR", order_id="OH-NAR", reason=attack, explain="narrative")
        )
    assert status == 200, answer
    (params,) = sent
    assert params["guardrailConfig"] == {"guardrailIdentifier": "gr-returns", "guardrailVersion": "1"}
    blocks = params["messages"][0]["content"]
    guarded = [b["guardContent"]["text"]["text"] for b in blocks if "guardContent" in b]
    trusted = json.dumps(
        [params["system"], [b for b in blocks if "guardContent" not in b]], ensure_ascii=False
    )
    assert len(guarded) == 1 and "Ignore all previous instructions" in guarded[0]
    assert "Ignore all previous" not in trusted
    assert answer["explanation"]["source"] == "bedrock"
