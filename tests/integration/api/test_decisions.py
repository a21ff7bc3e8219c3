"""DecisionStore against moto: idempotent writes, conflicts, TTL, append-only audit."""

from __future__ import annotations

from datetime import datetime, timezone

import boto3
import pytest
from moto import mock_aws

from local.stack import create_table
from returnguard.aws.decisions import TTL_SECONDS, Conflict, DecisionStore, body_hash
from returnguard.aws.feature_store import InMemoryFeatureStore
from returnguard.policy import PolicyConfig
from returnguard.schemas import RiskScoreRequest
from returnguard.scoring import decide
from returnguard.tables import AUDIT, DECISIONS
from tests.unit.api.fakes import ADDRESS, FakeModel

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def tables():
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, DECISIONS, "decisions")
        create_table(client, AUDIT, "audit")
        yield DecisionStore(client, "decisions", "audit"), client


def make_request(amount: float = 100.0) -> RiskScoreRequest:
    order = {
        "order_id": "ORD9",
        "customer_id": "C9",
        "product_id": "P1",
        "region": "KA",
        "amount": amount,
        "currency": "INR",
        "payment_method": "upi",
        "delivery_address": ADDRESS,
    }
    return RiskScoreRequest.model_validate({"event_type": "order", "order": order})


def decided(request: RiskScoreRequest):
    return decide(request, InMemoryFeatureStore(), FakeModel(0.4), PolicyConfig(), NOW)


def test_save_then_retry_returns_the_stored_decision(tables) -> None:
    store, client = tables
    req = make_request()
    d = decided(req)
    h = body_hash(req)
    assert h == body_hash(make_request())  # order_time defaulted to now does not change the hash
    saved, replayed = store.save(d.response, customer_id="C9", request_hash=h, features=d.vector, now=NOW)
    assert not replayed
    assert saved["recommended_action"] == "otp_verification"
    assert store.existing(d.response.decision_id, h) == saved
    # a concurrent second save with the same body returns the first answer, no second audit item
    again = decided(req)
    assert store.save(again.response, customer_id="C9", request_hash=h, features=again.vector, now=NOW) == (
        saved,
        True,
    )
    item = client.get_item(TableName="decisions", Key={"decision_id": {"S": d.response.decision_id}})["Item"]
    assert int(item["expires_at"]["N"]) == int(NOW.timestamp()) + TTL_SECONDS
    audit = client.query(
        TableName="audit",
        KeyConditionExpression="decision_id = :d",
        ExpressionAttributeValues={":d": {"S": d.response.decision_id}},
    )["Items"]
    assert len(audit) == 1 and audit[0]["action"]["S"] == "otp_verification"
    assert '"order_amount":100.0' in audit[0]["features"]["S"]


def test_different_body_is_a_conflict(tables) -> None:
    store, _ = tables
    first, other = make_request(100.0), make_request(250.0)
    d = decided(first)
    store.save(d.response, customer_id="C9", request_hash=body_hash(first), features=d.vector, now=NOW)
    with pytest.raises(Conflict):
        store.existing(d.response.decision_id, body_hash(other))
    d2 = decided(other)
    with pytest.raises(Conflict):
        store.save(d2.response, customer_id="C9", request_hash=body_hash(other), features=d2.vector, now=NOW)


def test_unknown_decision_is_none(tables) -> None:
    store, _ = tables
    assert store.get_response("dec_nope") is None
    assert store.existing("dec_nope", "h") is None


def test_decision_and_audit_are_written_together_or_not_at_all(tables) -> None:
    """An audit item that cannot be written (here: its key already taken) takes the decision back."""
    store, client = tables
    req = make_request(321.0)
    d = decided(req)
    created = NOW.isoformat()
    import returnguard.aws.decisions as decisions_module

    taken = {"decision_id": {"S": d.response.decision_id}, "recorded_at": {"S": f"{created}#1"}}
    client.put_item(TableName="audit", Item=taken)
    real_time_ns = decisions_module.time.time_ns
    decisions_module.time.time_ns = lambda: 1  # the audit key collides with the item above
    try:
        with pytest.raises(client.exceptions.ConditionalCheckFailedException):
            store.save(d.response, customer_id="C9", request_hash=body_hash(req), features=d.vector, now=NOW)
    finally:
        decisions_module.time.time_ns = real_time_ns
    assert store.get(d.response.decision_id) is None
    saved, replayed = store.save(
        d.response, customer_id="C9", request_hash=body_hash(req), features=d.vector, now=NOW
    )
    assert not replayed and store.get_response(d.response.decision_id) == saved
