"""Stream benchmarks: the stream Lambda's records/s on its own CPU and against the local moto server,
and a synthetic history replayed end to end (producer → Kinesis → poller → handler → DynamoDB).

Baseline in the same run: `returnguard.aggregates.replay` of the same events in memory, the pure
domain work, so the ratio is what envelopes, JSON, conditional writes and exactly-once bookkeeping
cost on top.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from typing import Any

from returnguard import synth


class _ConditionFailed(Exception):
    pass


class _MemoryDynamo:
    """The four DynamoDB calls the stream applier makes, on dicts: no I/O in the CPU benchmark."""

    class exceptions:  # noqa: N801 - the boto3 client's attribute name
        ConditionalCheckFailedException = _ConditionFailed

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, dict]] = {"features": {}, "idempotency": {}}
        self.keys = {"features": "pk", "idempotency": "id"}

    def _key(self, table: str, key: dict) -> str:
        return key[self.keys[table]]["S"]

    def batch_get_item(self, RequestItems: dict) -> dict:  # noqa: N803
        responses = {
            table: [
                self.tables[table][k]
                for k in (self._key(table, key) for key in spec["Keys"])
                if k in self.tables[table]
            ]
            for table, spec in RequestItems.items()
        }
        return {"Responses": responses, "UnprocessedKeys": {}}

    def get_item(self, TableName: str, Key: dict, **_: Any) -> dict:  # noqa: N803
        item = self.tables[TableName].get(self._key(TableName, Key))
        return {"Item": item} if item else {}

    def put_item(self, TableName: str, Item: dict, ConditionExpression: str = "", **kw: Any) -> dict:  # noqa: N803
        key = self._key(TableName, Item)
        current = self.tables[TableName].get(key)
        if ConditionExpression == "attribute_not_exists(pk)" and current is not None:
            raise _ConditionFailed(key)
        if ConditionExpression.startswith("version") and (
            current is None or current["version"]["N"] != kw["ExpressionAttributeValues"][":v"]["N"]
        ):
            raise _ConditionFailed(key)
        self.tables[TableName][key] = Item
        return {}

    def batch_write_item(self, RequestItems: dict) -> dict:  # noqa: N803
        for table, requests in RequestItems.items():
            for request in requests:
                item = request["PutRequest"]["Item"]
                self.tables[table][self._key(table, item)] = item
        return {"UnprocessedItems": {}}


def _records(events: list[dict]) -> list[dict]:
    return [
        {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": "p",
                "sequenceNumber": str(10**20 + i),
                "data": base64.b64encode(json.dumps(e).encode()).decode(),
                "approximateArrivalTimestamp": 1.7e9,
            },
            "eventSource": "aws:kinesis",
            "eventID": f"shardId-000000000000:{10**20 + i}",
            "eventName": "aws:kinesis:record",
            "eventSourceARN": "arn:aws:kinesis:us-east-1:000000000000:stream/events",
        }
        for i, e in enumerate(events)
    ]


def _baseline(data: Any) -> float:
    from returnguard.aggregates import replay

    started = time.perf_counter()
    _, walk = replay(*synth.to_contexts(data))
    for _ in walk:
        pass
    return time.perf_counter() - started


def bench_cpu(data: Any, events: list[dict]) -> list[dict]:
    from local import stack as local_stack
    from local.api_server import LambdaContext
    from local.streaming import load_handler
    from returnguard.aws.stream_apply import StreamApplier

    stack = local_stack.start(prefix="returnguard-bench-stream-cpu")  # only to import the handler
    try:
        handler = load_handler(stack)
    finally:
        stack.stop()
    handler.applier = StreamApplier(_MemoryDynamo(), "features", "idempotency")
    records = _records(events)
    with open(os.devnull, "w") as sink:
        real, sys.stdout = sys.stdout, sink
        try:
            started = time.perf_counter()
            for i in range(0, len(records), 100):
                result = handler.lambda_handler({"Records": records[i : i + 100]}, LambdaContext())
                assert not result["batchItemFailures"]
            seconds = time.perf_counter() - started
        finally:
            sys.stdout = real
    base = _baseline(data)
    return [
        {
            "name": f"stream handler CPU, {len(events):,} events",
            "value": len(events) / seconds,
            "unit": "events/s",
            "baseline": len(events) / base,
            "ratio": base / seconds,
            "note": "in-memory DynamoDB; baseline: returnguard.aggregates.replay of the same history",
        }
    ]


def bench_end_to_end(data: Any, events: list[dict], label: str) -> list[dict]:
    from local import stack as local_stack
    from local.streaming import Poller, load_handler, produce

    stack = local_stack.start(prefix=f"returnguard-bench-stream-{label}")
    try:
        handler = load_handler(stack)
        started = time.perf_counter()
        produce(stack, events)
        produced = time.perf_counter() - started
        with open(os.devnull, "w") as sink:
            stats = Poller(stack, handler, log=sink).drain()
        seconds = time.perf_counter() - started
    finally:
        stack.stop()
    assert stats.records == len(events) and stats.failed == 0
    base = _baseline(data)
    return [
        {
            "name": f"replay {len(events):,} events end to end (moto server)",
            "value": seconds,
            "unit": "s",
            "baseline": base,
            "ratio": seconds / base,
            "note": f"{len(events) / seconds:,.0f} events/s; producing took {produced:.1f} s",
        }
    ]


def run(scale: str) -> list[dict]:
    from local.streaming import history_events

    small = synth.generate(synth.SynthConfig(orders=2_000 if scale == "quick" else 10_000, seed=3, days=60))
    small_events = list(history_events(small))
    rows = bench_cpu(small, small_events)
    rows += bench_end_to_end(small, small_events, "small")
    if scale == "full":
        large = synth.generate(synth.SynthConfig(orders=77_000, seed=3, days=365))  # ≈ 100k events
        large_events = list(history_events(large))
        rows += bench_end_to_end(large, large_events, "large")
    return rows
