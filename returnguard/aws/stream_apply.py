"""Apply one stream event to the `features` table, exactly once, and land it in the lake.

Exactly once, per item and per event:
- Each aggregate item remembers, per Kinesis shard, the sequence number of the last record applied
  to it (`positions`). A redelivered record (a retry after a partial failure, a crash between two
  item writes) finds its position already recorded on the items it reached and skips them, and
  completes the ones it did not. This needs the records of a shard applied in order, one at a time:
  the consumer runs with parallelization factor 1 and stops a batch at its first failure.
- A producer that sent the same event twice (same `event_id`, another sequence number) is caught by
  the `idempotency` table: `event#<id>` is written once the event is fully applied (TTL 7 days).
Writes are conditional on the item's version (optimistic concurrency, bounded retries); a throttled
or failed write raises, so the record is retried, never lost and never counted twice.

Late and out-of-order events land where their event time puts them: every aggregate is a count, a
sum, a min/max, or a list kept sorted by time and pruned against the latest time, so applying a set
of events in any order gives the same state. The one exception: a return applied before its own
order counts in every return total but cannot mark that order as returned among the last six.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from returnguard.aggregates import (
    Aggregate,
    ReturnContext,
    apply_customer_profile,
    apply_order_to_customer,
    apply_order_to_entity,
    apply_return_to_customer,
    apply_return_to_entity,
    order_entity_ids,
)
from returnguard.aws.feature_store import decode_item, encode_item
from returnguard.events import CustomerPayload, Envelope, to_context
from returnguard.features import OrderContext
from returnguard.tables import entity_key

MAX_VERSION_RETRIES = 8
MARKER_TTL_SECONDS = 7 * 86_400
POSITION_KEEP_MS = 7 * 86_400_000  # shard marks untouched this long belong to closed shards


@dataclass(frozen=True)
class Position:
    shard_id: str
    sequence_number: int


class VersionConflictExhausted(RuntimeError):
    """Another writer kept changing the item: retry the record later."""


Change = Callable[[Aggregate | None], Aggregate]


def changes(envelope: Envelope, payload: Any) -> list[tuple[str, Change]]:
    """(features-table key, how the event changes that item) for every item the event touches."""
    if isinstance(payload, CustomerPayload):
        registered = int(payload.registered_at.timestamp() * 1000)
        return [
            (entity_key("customer", payload.customer_id), lambda s: apply_customer_profile(s, registered))
        ]
    context = to_context(envelope, payload)
    if isinstance(context, OrderContext):
        order = context
        out: list[tuple[str, Change]] = [
            (entity_key("customer", order.customer_id), lambda s: apply_order_to_customer(s, order))
        ]
        for group, eid in order_entity_ids(order).items():
            out.append((entity_key(group, eid), lambda s: apply_order_to_entity(s, order.order_time_ms)))
        return out
    if isinstance(context, ReturnContext):
        ret = context
        out = [(entity_key("customer", ret.customer_id), lambda s: apply_return_to_customer(s, ret))]
        for group, eid in order_entity_ids(ret).items():
            out.append((entity_key(group, eid), lambda s: apply_return_to_entity(s, ret.return_time_ms)))
        return out
    return []  # product profiles: landed in the lake, not counted


class StreamApplier:
    """`dynamodb` and `s3` are boto3 clients created once by the caller."""

    def __init__(
        self, dynamodb: Any, features_table: str, idempotency_table: str, s3: Any = None, bucket: str = ""
    ):
        self._db, self._features, self._idempotency = dynamodb, features_table, idempotency_table
        self._s3, self._bucket = s3, bucket

    def _read(self, marker: str, keys: list[str]) -> tuple[bool, dict[str, dict[str, Any]]]:
        """One BatchGetItem (strongly consistent) for the done marker and every item the event touches."""
        request: dict[str, Any] = {
            self._idempotency: {"Keys": [{"id": {"S": marker}}], "ConsistentRead": True},
        }
        if keys:
            request[self._features] = {"Keys": [{"pk": {"S": k}} for k in keys], "ConsistentRead": True}
        found: dict[str, dict[str, Any]] = {}
        done = False
        for attempt in range(8):
            response = self._db.batch_get_item(RequestItems=request)
            done = done or bool(response["Responses"].get(self._idempotency))
            for item in response["Responses"].get(self._features, []):
                found[item["pk"]["S"]] = item
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return done, found
            time.sleep(0.01 * 2**attempt)
        raise RuntimeError("DynamoDB kept returning unprocessed keys")

    def apply(self, envelope: Envelope, payload: Any, position: Position, raw: bytes) -> str:
        """'applied' or 'duplicate'. Raises on anything transient (throttling, conflicts, S3)."""
        touched = changes(envelope, payload)
        done, items = self._read(f"event#{envelope.event_id}", list(dict.fromkeys(k for k, _ in touched)))
        if done:
            return "duplicate"
        for key, change in touched:
            self._apply_item(key, change, position, items.get(key))
        self._land(envelope, raw)
        self._db.put_item(
            TableName=self._idempotency,
            Item={
                "id": {"S": f"event#{envelope.event_id}"},
                "applied_at": {"N": str(int(time.time()))},
                "expiration": {"N": str(int(time.time()) + MARKER_TTL_SECONDS)},
            },
        )
        return "applied"

    def _apply_item(self, key: str, change: Change, position: Position, item: dict[str, Any] | None) -> None:
        """`item`: as read with the event; after a version conflict it is read again."""
        for attempt in range(MAX_VERSION_RETRIES):
            if attempt:
                item = self._db.get_item(
                    TableName=self._features, Key={"pk": {"S": key}}, ConsistentRead=True
                ).get("Item")
            decoded = decode_item(item) if item else {}
            version = int(decoded.get("version", 0))
            positions: dict[str, list[int]] = json.loads(decoded.get("positions") or "{}")
            seen = positions.get(position.shard_id)
            if seen is not None and int(seen[0]) >= position.sequence_number:
                return  # this record already reached this item
            state = change(copy.deepcopy(decoded.get("state")))
            now_ms = int(time.time() * 1000)
            positions = {s: p for s, p in positions.items() if now_ms - int(p[1]) < POSITION_KEEP_MS}
            positions[position.shard_id] = [position.sequence_number, now_ms]
            new_item = encode_item(key, state, version + 1)
            new_item["positions"] = {"S": json.dumps(positions, separators=(",", ":"), sort_keys=True)}
            condition = (
                {"ConditionExpression": "attribute_not_exists(pk)"}
                if item is None
                else {
                    "ConditionExpression": "version = :v",
                    "ExpressionAttributeValues": {":v": {"N": str(version)}},
                }
            )
            try:
                self._db.put_item(TableName=self._features, Item=new_item, **condition)
                return
            except self._db.exceptions.ConditionalCheckFailedException:
                continue  # someone else wrote it: read again and reapply
        raise VersionConflictExhausted(key)

    def _land(self, envelope: Envelope, raw: bytes) -> None:
        if self._s3 is None or not self._bucket:
            return
        day = envelope.event_time.strftime("%Y-%m-%d")
        self._s3.put_object(
            Bucket=self._bucket,
            Key=f"raw/events/event_type={envelope.event_type}/dt={day}/{envelope.event_id}.json",
            Body=raw,
            ContentType="application/json",
        )
