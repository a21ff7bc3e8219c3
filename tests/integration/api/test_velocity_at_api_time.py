# ruff: noqa: F811 - `handlers` is the score handler tests' fixture, imported to be used as one
"""Velocity at API time (issue 16 item 10): the score function records each order it scores in the
customer's velocity# item, so orders seconds apart trip the velocity rule before any stream event
arrives, and once the stream has applied the same orders nothing is counted twice."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3

from local.stack import create_table
from returnguard.aws.feature_store import decode_item
from returnguard.aws.stream_apply import Position, StreamApplier, StreamRecord
from returnguard.events import parse
from returnguard.tables import IDEMPOTENCY, recent_orders_key
from tests.integration.api.test_score_handler import (  # noqa: F401
    call,
    event,
    handlers,
    order,
)


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _score(module: Any, order_id: str, customer: str, when: datetime) -> dict[str, Any]:
    status, body = call(
        module, event("POST", "/v1/risk-score", order(order_id, customer, order_time=_iso(when)))
    )
    assert status == 200, body
    return body


def _audited_vector(decision_id: str) -> dict[str, float]:
    client = boto3.client("dynamodb", region_name="us-east-1")
    items = client.query(
        TableName="audit",
        KeyConditionExpression="decision_id = :d",
        ExpressionAttributeValues={":d": {"S": decision_id}},
    )["Items"]
    return json.loads(items[-1]["features"]["S"])


def test_three_orders_in_one_second_trip_velocity_before_the_stream_sees_them(handlers) -> None:
    start = datetime.now(timezone.utc)
    times = [start + timedelta(milliseconds=400 * i) for i in range(3)]
    # default policy: two orders within 60 s make velocity
    default = [_score(handlers["live"], f"FAST-{i}", "C-FAST", t) for i, t in enumerate(times)]
    assert ["velocity" in d["rules_triggered"] for d in default] == [False, True, True]
    # a deployment where it takes three: only the third
    strict = [
        _score(handlers["three_orders_a_minute"], f"FAST3-{i}", "C-FAST3", t) for i, t in enumerate(times)
    ]
    assert ["velocity" in d["rules_triggered"] for d in strict] == [False, False, True]
    assert _audited_vector(strict[2]["decision_id"])["customer_orders_last_60s"] == 2


def test_a_retried_order_is_recorded_once(handlers) -> None:
    when = datetime.now(timezone.utc)
    first = _score(handlers["live"], "RETRY-1", "C-RETRY", when)
    again = _score(handlers["live"], "RETRY-1", "C-RETRY", when)
    assert first == again
    item = boto3.client("dynamodb", region_name="us-east-1").get_item(
        TableName="features", Key={"pk": {"S": recent_orders_key("C-RETRY")}}
    )["Item"]
    assert decode_item(item)["orders"] == {"RETRY-1": int(when.timestamp() * 1000)}
    later = _score(handlers["live"], "RETRY-2", "C-RETRY", when + timedelta(seconds=1))
    assert _audited_vector(later["decision_id"])["customer_orders_last_60s"] == 1


def test_a_customers_velocity_item_expires_two_hours_after_their_last_order(handlers) -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")
    ttl = client.describe_time_to_live(TableName="features")["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl.get("AttributeName")) == ("ENABLED", "expires_at")
    when = datetime.now(timezone.utc)
    expiries = []
    for i in range(2):  # the first order creates the item, the second updates it
        _score(handlers["live"], f"TTL-{i}", "C-TTL", when - timedelta(minutes=30 * (1 - i)))
        item = client.get_item(TableName="features", Key={"pk": {"S": recent_orders_key("C-TTL")}})["Item"]
        expiries.append(int(item["expires_at"]["N"]))
        assert set(item["orders"]["M"]) == {f"TTL-{j}" for j in range(i + 1)}
    # two hours after it was scored (an order scored late counts from when it was scored)
    assert expiries[0] >= int((when + timedelta(hours=2)).timestamp())
    assert expiries[1] >= expiries[0]
    aggregate = client.get_item(TableName="features", Key={"pk": {"S": "customer#C-TTL"}}).get("Item", {})
    assert "expires_at" not in aggregate  # aggregates never expire


def test_the_stream_applying_the_same_orders_does_not_double_count(handlers) -> None:
    # Given three orders scored by the API, and then applied to the aggregate by the stream consumer
    client = boto3.client("dynamodb", region_name="us-east-1")
    create_table(client, IDEMPOTENCY, "idempotency")
    start = datetime.now(timezone.utc) - timedelta(seconds=5)  # all four dated before they are scored
    times = [start + timedelta(milliseconds=300 * i) for i in range(3)]
    for i, t in enumerate(times):
        _score(handlers["live"], f"BOTH-{i}", "C-BOTH", t)
    records = []
    for i, t in enumerate(times):
        payload = {k: v for k, v in order(f"BOTH-{i}", "C-BOTH")["order"].items() if k != "order_time"}
        raw = json.dumps(
            {"event_type": "order", "event_id": f"ord-BOTH-{i}", "event_time": _iso(t), "payload": payload}
        ).encode()
        envelope, typed = parse(raw)
        records.append(StreamRecord(envelope, typed, Position("shardId-000000000000", i + 1), raw))
    result = StreamApplier(client, "features", "idempotency").apply_batch(records)
    assert result.failed_from is None, result.error
    # When the fourth order is scored
    fourth = _score(handlers["live"], "BOTH-3", "C-BOTH", start + timedelta(seconds=1))
    # Then it counts three earlier orders, not six, and the stream's counts are there too
    vector = _audited_vector(fourth["decision_id"])
    assert vector["customer_orders_last_60s"] == 3 and vector["customer_orders_last_1h"] == 3
    assert vector["customer_order_count"] == 3


def test_an_order_dated_ahead_does_not_hide_the_orders_just_placed(handlers) -> None:
    # item 4: the window allows a few minutes ahead (clock skew); such a time is scored as of now
    # Given an order placed just now
    _score(handlers["live"], "AHEAD-1", "C-AHEAD", datetime.now(timezone.utc))
    # When the next one, a moment later, is dated as far ahead as the window allows
    ahead = _score(
        handlers["live"], "AHEAD-2", "C-AHEAD", datetime.now(timezone.utc) + timedelta(minutes=4, seconds=50)
    )
    # Then its velocity window still holds the first
    assert "velocity" in ahead["rules_triggered"]
    assert _audited_vector(ahead["decision_id"])["customer_orders_last_60s"] == 1
    # and an order dated now, after it, counts both: the one dated ahead was recorded as of its scoring
    third = _score(handlers["live"], "AHEAD-3", "C-AHEAD", datetime.now(timezone.utc))
    assert _audited_vector(third["decision_id"])["customer_orders_last_60s"] == 2
