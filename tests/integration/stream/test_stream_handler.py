"""The stream Lambda on moto: exactly once under duplicates, reordering and throttling; poison records
to the dead-letter queue; partial batch responses."""

from __future__ import annotations

import json
import random
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local.streaming import history_events
from returnguard import synth
from returnguard.aggregates import replay
from returnguard.aws import stream_apply
from returnguard.aws.stream_apply import changes
from returnguard.events import OrderPayload, ReturnPayload, envelope, parse
from returnguard.features import amount_to_minor
from returnguard.tables import entity_key
from tests.integration.stream.conftest import Delivery, normalized, order_records, stored_states


@pytest.fixture(scope="module")
def history():
    data = synth.generate(synth.SynthConfig(orders=450, seed=21, days=45))
    store, walk = replay(*synth.to_contexts(data))
    for _ in walk:
        pass
    expected = {entity_key("customer", cid): s for cid, s in store.customers.items()}
    expected.update({entity_key(group, eid): s for (group, eid), s in store.entities.items()})
    return list(history_events(data)), normalized(expected)


def expected_order_records(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The `order#` records the events make: each order's facts, each return under its order."""
    records: dict[str, dict[str, Any]] = {}
    for event in events:
        head, payload = parse(json.dumps(event).encode())
        if isinstance(payload, OrderPayload):
            records.setdefault(payload.order_id, {}).update(
                customer_id=payload.customer_id,
                product_id=payload.product_id,
                amount_minor=amount_to_minor(payload.amount),
                currency=payload.currency,
                order_time_ms=head.time_ms,
            )
        elif isinstance(payload, ReturnPayload):
            records.setdefault(payload.order_id, {}).setdefault("returned", {})[payload.return_id] = (
                payload.product_id
            )
    return records


def perturbed(events: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Shuffled in windows of 40 (late and early events across customers), 6% sent twice (the copy
    somewhere later), with each return kept after its own order (see docs/events.md)."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for start in range(0, len(events), 40):
        window = events[start : start + 40]
        rng.shuffle(window)
        out.extend(window)
    placed: list[dict[str, Any]] = []
    seen_orders: set[str] = set()
    waiting: dict[str, list[dict[str, Any]]] = {}
    for event in out:
        if event["event_type"] == "return" and event["payload"]["order_id"] not in seen_orders:
            waiting.setdefault(event["payload"]["order_id"], []).append(event)
            continue
        placed.append(event)
        if event["event_type"] == "order":
            seen_orders.add(event["payload"]["order_id"])
            placed.extend(waiting.pop(event["payload"]["order_id"], []))
    assert not waiting
    for event in rng.sample(placed, k=len(placed) * 6 // 100):
        placed.insert(rng.randrange(placed.index(event) + 1, len(placed) + 1), event)
    return placed


@pytest.mark.slow
def test_duplicates_reordering_and_throttling_change_nothing(aws, stream_handler, history) -> None:
    events, expected = history
    stream = perturbed(events, seed=5)
    assert len(stream) > len(events) and [e["event_id"] for e in stream] != [e["event_id"] for e in events]
    calls = {"n": 0, "throttled": 0}
    lock = threading.Lock()  # the applier writes items from several threads

    def throttle(**_: Any) -> None:
        with lock:
            calls["n"] += 1
            refuse = calls["n"] % 9 == 0  # every ninth aggregate write is refused, mid-batch
            calls["throttled"] += refuse
        if refuse:
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
                "PutItem",
            )

    stream_handler.applier._db.meta.events.register("before-call.dynamodb.PutItem", throttle)
    delivery = Delivery(stream_handler, batch_size=25)
    delivery.run([json.dumps(e).encode() for e in stream])

    assert calls["throttled"] > 20 and delivery.redelivered > 0  # the failure path really ran
    assert normalized(stored_states(aws["dynamodb"])) == expected  # nothing lost, nothing twice
    assert order_records(aws["dynamodb"]) == expected_order_records(events)
    markers = aws["dynamodb"].scan(TableName="idempotency", Select="COUNT")["Count"]
    assert markers == len({e["event_id"] for e in events})
    landed = aws["s3"].list_objects_v2(Bucket="lake", Prefix="raw/events/event_type=order/")["KeyCount"]
    assert landed == sum(1 for e in events if e["event_type"] == "order")


def test_a_replayed_stream_changes_nothing(aws, stream_handler, history) -> None:
    events, _ = history
    first = [json.dumps(e).encode() for e in events[:120]]
    Delivery(stream_handler).run(first)
    before = stored_states(aws["dynamodb"])
    again = Delivery(stream_handler)
    again.run(first)  # the same events again, as a producer replaying its log would send them
    assert stored_states(aws["dynamodb"]) == before
    assert all(not r.get("batchItemFailures") for r in again.responses)


def test_poison_records_go_to_the_dead_letter_queue_and_the_rest_applies(aws, stream_handler, capsys) -> None:
    good = envelope(
        "order",
        "ord-ok-1",
        1_700_000_000_000,
        {
            "order_id": "OK1",
            "customer_id": "C1",
            "product_id": "P1",
            "seller_id": "S1",
            "category": "fashion",
            "region": "KA",
            "amount": 499.0,
            "currency": "INR",
            "payment_method": "cod",
            "delivery_address": "12 MG Road",
        },
    )
    bad_payload = {**good, "event_id": "ord-bad-1", "payload": {**good["payload"], "amount": -3}}
    no_zone = {**good, "event_id": "ord-bad-2", "event_time": "2026-01-01T10:00:00"}
    records = [
        b"\xff\xfe not json",
        json.dumps(bad_payload).encode(),
        json.dumps(good).encode(),
        json.dumps(no_zone).encode(),
    ]
    delivery = Delivery(stream_handler, batch_size=10)
    delivery.run(records)
    assert delivery.responses == [{"batchItemFailures": []}]  # poison never blocks the shard
    (emitted,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert (emitted["PoisonRecords"], emitted["EventsApplied"]) == ([3.0], [1.0])  # once per invocation
    assert "RecordsRetried" not in emitted
    assert stored_states(aws["dynamodb"])["customer#C1"]["order_count"] == 1
    messages = aws["sqs"].receive_message(QueueUrl=stream_handler.settings.dlq_url, MaxNumberOfMessages=10)[
        "Messages"
    ]
    reasons = sorted(json.loads(m["Body"])["reason"] for m in messages)
    assert len(reasons) == 3
    assert any("not JSON" in r for r in reasons) and any("payload.amount" in r for r in reasons)
    assert any("time zone" in r for r in reasons)


def folded(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The aggregates the events leave when each change is applied once, in order: the pure functions
    of returnguard.aggregates, with no store, no batching and no failures."""
    states: dict[str, Any] = {}
    for event in events:
        touched = changes(*parse(json.dumps(event).encode()))
        for _, change in touched:
            if isinstance(change, stream_apply.SellerOrder):  # a buyer's first order with the seller
                change.new_buyer = not (states.get(change.pair_key) or {}).get("order_count")
        for key, change in touched:
            states[key] = change(states.get(key))
    return states


def _first_new_customer(events: list[dict[str, Any]], start: int) -> int:
    """The first event from `start` on whose customer no earlier event of the list touches."""
    seen = {e["payload"]["customer_id"] for e in events[:start]}
    for i in range(start, len(events)):
        if events[i]["payload"]["customer_id"] not in seen:
            return i
        seen.add(events[i]["payload"]["customer_id"])
    raise AssertionError("no new customer in the batch")


@pytest.mark.parametrize("where", ["aggregate write", "lake landing", "done markers", "our own code"])
def test_a_failure_fails_the_earliest_record_it_touched_and_every_later_one(
    aws, stream_handler, history, where, monkeypatch, capsys
) -> None:
    events, _ = history
    batch = events[:10]
    records = [json.dumps(e).encode() for e in batch]
    state = {"failed": 0}
    if where == "our own code":  # a valid event the aggregate functions choke on, once
        failing = 3
        original = stream_apply.changes

        def flaky(envelope: Any, payload: Any) -> Any:
            if envelope.event_id == batch[failing]["event_id"] and not state["failed"]:
                state["failed"] += 1
                raise ZeroDivisionError("a bug")
            return original(envelope, payload)

        monkeypatch.setattr(stream_apply, "changes", flaky)
        hook, operation, client = "", "", None

        def matches(params: dict) -> bool:
            return False
    elif where == "aggregate write":  # the first write of an item no earlier record touches
        failing = _first_new_customer(batch, 3)
        hook, operation = "before-parameter-build.dynamodb.PutItem", "PutItem"
        client = stream_handler.applier._db

        def matches(params: dict) -> bool:
            return params["Item"]["pk"]["S"] == entity_key(
                "customer", batch[failing]["payload"]["customer_id"]
            )
    elif where == "lake landing":
        failing = 3
        hook, operation = "before-parameter-build.s3.PutObject", "PutObject"
        client = stream_handler.applier._s3

        def matches(params: dict) -> bool:
            return params["Key"].endswith(f"/{batch[failing]['event_id']}.json")
    else:  # all ten markers share one BatchWriteItem: the batch fails from its first record
        failing = 0
        hook, operation = "before-parameter-build.dynamodb.BatchWriteItem", "BatchWriteItem"
        client = stream_handler.applier._db

        def matches(params: dict) -> bool:
            return True

    def fail_once(params: dict, **_: Any) -> None:
        if matches(params) and not state["failed"]:
            state["failed"] += 1
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "x"}}, operation)

    if client is not None:
        client.meta.events.register(hook, fail_once)
    delivery = Delivery(stream_handler, batch_size=10)
    delivery.run(records)
    first = delivery.responses[0]["batchItemFailures"]
    assert state["failed"] == 1
    assert [int(f["itemIdentifier"]) - 1_000_000 for f in first] == list(range(failing, 10))
    assert delivery.responses[1] == {"batchItemFailures": []}
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [m["RecordsRetried"] for m in emitted if "RecordsRetried" in m] == [[10 - failing]]
    assert aws["dynamodb"].scan(TableName="idempotency", Select="COUNT")["Count"] == 10
    assert aws["s3"].list_objects_v2(Bucket="lake", Prefix="raw/events/")["KeyCount"] == 10
    assert normalized(stored_states(aws["dynamodb"])) == normalized(folded(batch))  # each change once


def test_one_batch_writes_each_item_once(aws, stream_handler, history) -> None:
    events, _ = history
    batch = events[:100]
    puts = {"n": 0}

    def count(**_: Any) -> None:
        puts["n"] += 1

    stream_handler.applier._db.meta.events.register("before-call.dynamodb.PutItem", count)
    Delivery(stream_handler, batch_size=100).run([json.dumps(e).encode() for e in batch])
    items = len(stored_states(aws["dynamodb"]))
    assert puts["n"] == items  # not one write per event and item
    assert items < sum(1 + 4 * (e["event_type"] != "customer") for e in batch)


def test_order_and_return_events_write_the_order_records_returns_are_checked_against(
    aws, stream_handler, history
) -> None:
    # Given orders (eight of them returned) that reach the store only through the stream, no API call
    events, _ = history
    returned = [e["payload"]["order_id"] for e in events if e["event_type"] == "return"][:8]
    others = [e["payload"]["order_id"] for e in events if e["event_type"] == "order"][:8]
    kept = set(returned) | set(others)
    batch = [e for e in events if e["event_type"] != "customer" and e["payload"]["order_id"] in kept]
    # When they are applied, and the same records are delivered again
    payloads = [json.dumps(e).encode() for e in batch]
    Delivery(stream_handler, batch_size=25).run(payloads)
    Delivery(stream_handler, batch_size=25).run(payloads)
    # Then each order's record holds what was paid and which items went back, as the API writes it
    records = order_records(aws["dynamodb"])
    assert records == expected_order_records(batch) and len(records) == len(kept)
    assert sum("returned" in r for r in records.values()) >= 8
    # kept as long as a return can still be in its window (the score function's TTL)
    head, order = parse(payloads[0])
    item = aws["dynamodb"].get_item(TableName="features", Key={"pk": {"S": f"order#{order.order_id}"}})
    assert int(item["Item"]["expires_at"]["N"]) == stream_handler.applier._order_records.expires_at(
        head.time_ms
    )


def test_the_handler_refuses_to_start_without_its_dead_letter_queue(monkeypatch) -> None:
    import importlib.util
    from pathlib import Path

    from pydantic import ValidationError

    monkeypatch.delenv("RG_DLQ_URL", raising=False)
    monkeypatch.setenv("RG_FEATURES_TABLE", "features")
    monkeypatch.setenv("RG_IDEMPOTENCY_TABLE", "idempotency")
    path = Path(__file__).resolve().parents[3] / "lambdas" / "stream" / "handler.py"
    spec = importlib.util.spec_from_file_location("stream_handler_no_dlq", path)
    assert spec and spec.loader
    with pytest.raises(ValidationError, match="RG_DLQ_URL"):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
