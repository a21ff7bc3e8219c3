"""Local streaming: a producer puts envelopes into the Kinesis stream on the moto server, a poller
reads them back and hands them to the `stream` Lambda's handler in Lambda's own event shape.

The poller does what the Kinesis event source mapping does for the deployed function: batches of up
to `batch_size` records per shard, and after a partial batch failure it reads again from the first
failed sequence number, so a record is retried, in order, until it goes through.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from local.api_server import LambdaContext, patched_environ
from local.stack import REGION, LocalStack
from returnguard.events import partition_key

HANDLER = Path(__file__).resolve().parent.parent / "lambdas" / "stream" / "handler.py"


def load_handler(stack: LocalStack, name: str | None = None) -> ModuleType:
    """Import the stream handler as one execution environment pointed at the local stack."""
    env = {
        **stack.environment(),
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "POWERTOOLS_SERVICE_NAME": "returnguard-stream",  # its own logger: the local API shares this process
        "POWERTOOLS_METRICS_NAMESPACE": "ReturnGuard",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    spec = importlib.util.spec_from_file_location(
        name or f"returnguard_local_stream_{uuid.uuid4().hex[:8]}", HANDLER
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    with patched_environ(env):
        spec.loader.exec_module(module)
    return module


def produce(stack: LocalStack, events: Iterable[Mapping[str, Any]], batch_size: int = 500) -> int:
    """PutRecords in batches (≤ 500, Kinesis' limit); records Kinesis refuses are put again."""
    kinesis = stack.client("kinesis")
    sent = 0
    chunk: list[dict[str, Any]] = []

    def flush(records: list[dict[str, Any]]) -> None:
        for _ in range(8):
            response = kinesis.put_records(StreamName=stack.stream_name, Records=records)
            if not response.get("FailedRecordCount"):
                return
            records = [
                r for r, result in zip(records, response["Records"], strict=True) if "ErrorCode" in result
            ]
            time.sleep(0.05)
        raise RuntimeError("Kinesis kept refusing records")

    for event in events:
        chunk.append({"Data": json.dumps(event).encode(), "PartitionKey": partition_key(dict(event))})
        if len(chunk) == batch_size:
            flush(chunk)
            sent, chunk = sent + len(chunk), []
    if chunk:
        flush(chunk)
        sent += len(chunk)
    return sent


def lambda_event(records: list[dict[str, Any]], shard_id: str, stream_arn: str) -> dict[str, Any]:
    """GetRecords output → the event the Kinesis event source mapping hands to Lambda."""
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r["PartitionKey"],
                    "sequenceNumber": r["SequenceNumber"],
                    "data": base64.b64encode(r["Data"]).decode(),
                    "approximateArrivalTimestamp": r["ApproximateArrivalTimestamp"].timestamp(),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard_id}:{r['SequenceNumber']}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": f"arn:aws:iam::000000000000:role/{shard_id}",
                "awsRegion": REGION,
                "eventSourceARN": stream_arn,
            }
            for r in records
        ]
    }


@dataclass
class PollStats:
    invocations: int = 0
    records: int = 0
    failed: int = 0  # record deliveries the handler reported failed (they are delivered again)


@dataclass
class Poller:
    """One reader per shard from TRIM_HORIZON, feeding `handler.lambda_handler`."""

    stack: LocalStack
    handler: ModuleType
    batch_size: int = 100
    log: TextIO | None = None  # where the function's stdout (logs, EMF metrics) goes; None: this stdout
    stats: PollStats = field(default_factory=PollStats)
    _iterators: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        kinesis = self.stack.client("kinesis")
        description = kinesis.describe_stream(StreamName=self.stack.stream_name)["StreamDescription"]
        self._arn = description["StreamARN"]
        self._kinesis = kinesis
        for shard in description["Shards"]:
            self._iterators[shard["ShardId"]] = kinesis.get_shard_iterator(
                StreamName=self.stack.stream_name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]

    def poll_once(self) -> int:
        """One GetRecords + one invocation per shard; returns the records delivered."""
        delivered = 0
        for shard_id, iterator in list(self._iterators.items()):
            response = self._kinesis.get_records(ShardIterator=iterator, Limit=self.batch_size)
            records = response["Records"]
            next_iterator = response["NextShardIterator"]
            if records:
                with contextlib.redirect_stdout(self.log) if self.log else contextlib.nullcontext():
                    result = self.handler.lambda_handler(
                        lambda_event(records, shard_id, self._arn), LambdaContext()
                    )
                failures = [int(f["itemIdentifier"]) for f in (result or {}).get("batchItemFailures", [])]
                self.stats.invocations += 1
                self.stats.records += len(records)
                self.stats.failed += len(failures)
                delivered += len(records)
                if failures:  # retry from the first failed record, as the event source mapping does
                    next_iterator = self._kinesis.get_shard_iterator(
                        StreamName=self.stack.stream_name,
                        ShardId=shard_id,
                        ShardIteratorType="AT_SEQUENCE_NUMBER",
                        StartingSequenceNumber=str(min(failures)),
                    )["ShardIterator"]
            self._iterators[shard_id] = next_iterator
        return delivered

    def drain(self, max_polls: int = 100_000) -> PollStats:
        """Poll until a round delivers nothing."""
        for _ in range(max_polls):
            if not self.poll_once():
                return self.stats
        raise RuntimeError("the stream did not drain")


def history_events(data: Any) -> Iterator[dict[str, Any]]:
    """A synthetic history (returnguard.synth) as envelopes, in event-time order: customer profiles,
    orders, returns. Event ids are the entities' own ids, so a replay repeats them exactly."""
    from returnguard import synth
    from returnguard.events import envelope, order_payload, return_payload

    profiles, orders, returns = synth.to_contexts(data)
    registered = {cid: ms for cid, ms in profiles.items()}
    timeline: list[tuple[int, int, str, dict[str, Any]]] = []
    for cid, ms in registered.items():
        timeline.append(
            (
                ms,
                0,
                cid,
                envelope("customer", f"cust-{cid}", ms, {"customer_id": cid, "registered_at": _iso(ms)}),
            )
        )
    currency = dict(zip(data.orders["order_id"], data.orders["currency"], strict=True))
    for o in orders:
        payload = order_payload(o, currency.get(o.order_id, "INR"))
        timeline.append(
            (o.order_time_ms, 1, o.order_id, envelope("order", f"ord-{o.order_id}", o.order_time_ms, payload))
        )
    for r in returns:
        event = envelope("return", f"ret-{r.return_id}", r.return_time_ms, return_payload(r))
        timeline.append((r.return_time_ms, 2, r.return_id, event))
    timeline.sort(key=lambda e: (e[0], e[1], e[2]))
    for *_, event in timeline:
        yield event


def _iso(ms: int) -> str:
    from datetime import datetime, timezone

    return (
        datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
