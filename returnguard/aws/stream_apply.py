"""Apply a batch of stream events to the `features` table, exactly once, and land them in the lake.

A batch is applied item by item, not event by event: one BatchGetItem reads every item the batch
touches and every event's done marker, each item's events are folded in sequence order, and each
changed item is written once, with the writes running in parallel. A hot item (a busy category, a
big seller) costs one write per batch instead of one per event.

Exactly once, per item and per event:
- Each aggregate item remembers, per Kinesis shard, the sequence number of the last record applied
  to it (`positions`). A redelivered record (a retry after a partial failure, a crash between two
  item writes) finds its position already recorded on the items it reached and skips them, and
  completes the ones it did not. This needs a shard's records in order: the consumer runs with
  parallelization factor 1, and the batch is reported failed from its first record that did not
  fully apply.
- A producer that sent the same event twice (same `event_id`, another sequence number) is caught by
  the `idempotency` table: `event#<id>` is written once the event is fully applied (TTL 7 days), and
  a second copy inside one batch is caught before anything is written.
- A seller's item counts its distinct buyers, which no single item can tell: the customer_seller
  items are written first, each keeping the event of the order that took its count from 0 to 1
  (`first_order_event`, beside the state), and a seller's order counts a new buyer exactly when its
  event is that one: the same answer on every redelivery and in any arrival order (each pair has one
  such order), and the same total as the Spark job's distinct buyers.
Writes are conditional on the item's version (optimistic concurrency, bounded retries); a throttled
or failed write fails the earliest record that needed it, so that record and every later one are
redelivered, never lost and never counted twice.

Order and return events also write the order's `order#` record (returnguard.order_record: what was
paid, which items went back), with the same idempotent UpdateItems the score function uses, once the
event's aggregates are written; a failed write fails the record like a failed aggregate write.

Late and out-of-order events land where their event time puts them: every aggregate is a count, a
sum, a min/max, or a list kept sorted by time and pruned against the latest time, so applying a set
of events in any order gives the same state. The one exception: a return applied before its own
order counts in every return total but cannot mark that order as returned among the last six.
"""

from __future__ import annotations

import copy
import functools
import json
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from returnguard.aggregates import (
    Aggregate,
    ReturnContext,
    apply_customer_profile,
    apply_order_to_customer,
    apply_order_to_group,
    apply_order_to_link,
    apply_order_to_pair,
    apply_order_to_seller,
    apply_return_to_customer,
    apply_return_to_entity,
    apply_return_to_link,
    apply_return_to_pair,
    apply_return_to_text,
    order_entity_ids,
)
from returnguard.aws.batches import until_processed
from returnguard.aws.feature_store import decode_item, encode_item
from returnguard.aws.order_records import OrderRecords
from returnguard.events import CustomerPayload, Envelope, OrderPayload, ReturnPayload, to_context
from returnguard.features import LINK_ITEMS, OrderContext, amount_to_minor, link_ids, pair_ids
from returnguard.payments import PaymentLabelPayload, PaymentPayload, stream_changes
from returnguard.returns_rules import DEFAULT_RETURN_WINDOW_DAYS
from returnguard.tables import entity_key

MAX_VERSION_RETRIES = 8
MAX_UNPROCESSED_RETRIES = 8
MARKER_TTL_SECONDS = 7 * 86_400
POSITION_KEEP_MS = 7 * 86_400_000  # shard marks untouched this long belong to closed shards
BATCH_GET_KEYS = 100  # DynamoDB's limit per BatchGetItem
BATCH_WRITE_ITEMS = 25  # and per BatchWriteItem
WRITERS = 8  # parallel item writes; boto3's default pool has 10 connections


@dataclass(frozen=True)
class Position:
    shard_id: str
    sequence_number: int


@dataclass(frozen=True)
class StreamRecord:
    envelope: Envelope
    payload: Any
    position: Position
    raw: bytes


@dataclass
class BatchResult:
    """`outcomes[i]` is 'applied' or 'duplicate' for every record before `failed_from`; that record
    and every later one must be redelivered. `error` is what stopped the batch."""

    outcomes: list[str] = field(default_factory=list)
    failed_from: int | None = None
    error: BaseException | None = None


class VersionConflictExhausted(RuntimeError):
    """Another writer kept changing the item: retry the record later."""


Change = Callable[[Aggregate | None], Aggregate]
BUYER_ITEM = "customer_seller"  # its first order decides which order makes the customer a seller's buyer


@dataclass
class SellerOrder:
    """An order's change to its seller's item, which counts the seller's distinct buyers: the order
    is a new buyer's when its event is the one that took the customer_seller item (`pair_key`) from no
    order to one. The applier writes those items first, remembering that event on the item, then
    sets `new_buyer`."""

    order: OrderContext
    pair_key: str
    event_id: str
    new_buyer: bool | None = None

    def __call__(self, state: Aggregate | None) -> Aggregate:
        if self.new_buyer is None:
            raise RuntimeError(f"{self.pair_key} not written yet: the seller cannot tell a new buyer")
        return apply_order_to_seller(state, self.order, self.new_buyer)


def changes(envelope: Envelope, payload: Any) -> list[tuple[str, Change]]:
    """(features-table key, how the event changes that item) for every item the event touches."""
    if isinstance(payload, CustomerPayload):
        registered = int(payload.registered_at.timestamp() * 1000)
        return [
            (entity_key("customer", payload.customer_id), lambda s: apply_customer_profile(s, registered))
        ]
    if isinstance(payload, (PaymentPayload, PaymentLabelPayload)):
        return stream_changes(envelope.time_ms, payload)
    context = to_context(envelope, payload)
    if isinstance(context, OrderContext):
        order = context
        out: list[tuple[str, Change]] = [
            (entity_key("customer", order.customer_id), lambda s: apply_order_to_customer(s, order))
        ]
        pairs = {group: entity_key(group, key) for group, key in pair_ids(order).items()}
        for group, eid in order_entity_ids(order).items():
            change: Change = (
                SellerOrder(order, pairs[BUYER_ITEM], envelope.event_id)
                if group == "seller"
                else functools.partial(apply_order_to_group, group, order=order)
            )
            out.append((entity_key(group, eid), change))
        for group, key in link_ids(order).items():
            out.append((entity_key(LINK_ITEMS[group], key), lambda s: apply_order_to_link(s, order)))
        for key in pairs.values():
            out.append((key, lambda s: apply_order_to_pair(s, order.order_time_ms)))
        return out
    if isinstance(context, ReturnContext):
        ret = context
        out = [(entity_key("customer", ret.customer_id), lambda s: apply_return_to_customer(s, ret))]
        for group, eid in order_entity_ids(ret).items():
            out.append(
                (
                    entity_key(group, eid),
                    lambda s: apply_return_to_entity(s, ret.return_time_ms, ret.reason_code),
                )
            )
        for group, key in ret.link_ids().items():
            out.append((entity_key(LINK_ITEMS[group], key), lambda s: apply_return_to_link(s, ret)))
        for group, key in ret.pair_ids().items():
            out.append((entity_key(group, key), lambda s: apply_return_to_pair(s, ret)))
        if ret.reason_text_key is not None:
            out.append((entity_key("text", ret.reason_text_key), lambda s: apply_return_to_text(s, ret)))
        return out
    return []  # product profiles: landed in the lake, not counted


@dataclass(frozen=True)
class _Step:
    index: int  # the record's place in the batch
    change: Change
    position: Position
    event_id: str


def _chunks(values: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


class StreamApplier:
    """`dynamodb` and `s3` are boto3 clients created once by the caller (they are thread-safe)."""

    def __init__(
        self,
        dynamodb: Any,
        features_table: str,
        idempotency_table: str,
        s3: Any = None,
        bucket: str = "",
        return_window_days: int = DEFAULT_RETURN_WINDOW_DAYS,
    ):
        self._db, self._features, self._idempotency = dynamodb, features_table, idempotency_table
        self._s3, self._bucket = s3, bucket
        # `order#` records: what a return request's rules check (the score function writes them too)
        self._order_records = OrderRecords(dynamodb, features_table, return_window_days)
        self._pool = ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="stream-write")

    def apply_batch(self, records: list[StreamRecord]) -> BatchResult:
        """Never raises for a transient failure: it is reported as `failed_from` and `error`."""
        touched: list[list[tuple[str, Change]]] = []
        unusable: tuple[int, BaseException] | None = None
        for i, record in enumerate(records):
            try:
                touched.append(changes(record.envelope, record.payload))
            except Exception as error:  # a valid event our code cannot apply: it and the rest wait
                unusable, records = (i, error), records[:i]
                break
        event_ids = [r.envelope.event_id for r in records]
        try:
            done, items = self._read(
                list(dict.fromkeys(event_ids)), list(dict.fromkeys(k for t in touched for k, _ in t))
            )
        except Exception as error:  # nothing was written: the whole batch comes again
            return BatchResult(failed_from=0, error=error)

        outcomes: list[str] = []
        plan: dict[str, list[_Step]] = {}
        for i, (record, event_id) in enumerate(zip(records, event_ids, strict=True)):
            if event_id in done:
                outcomes.append("duplicate")
                continue
            done.add(event_id)  # a second copy later in this batch is a duplicate too
            outcomes.append("applied")
            for key, change in touched[i]:
                plan.setdefault(key, []).append(_Step(i, change, record.position, event_id))

        result = BatchResult(outcomes=outcomes)
        if unusable is not None:
            self._fail(result, [unusable])
        # The customer_seller items first: each remembers the event of its first order, which tells the
        # seller's item whether an order is a new buyer's (SellerOrder), the same on every redelivery.
        first_orders: dict[str, str | None] = {}
        buyer_items = {k: steps for k, steps in plan.items() if k.startswith(entity_key(BUYER_ITEM, ""))}
        self._fail(
            result,
            self._run(
                (steps[0].index, partial(self._write_item, key, steps, items.get(key), first_orders))
                for key, steps in buyer_items.items()
            ),
        )
        # Then the rest, up to the first record a buyer item failed (an item's shard position must not
        # pass a record that is coming again).
        limit = self._limit(result, records)
        rest = {k: [s for s in steps if s.index < limit] for k, steps in plan.items() if k not in buyer_items}
        for step in (s for steps in rest.values() for s in steps):
            if isinstance(step.change, SellerOrder):
                step.change.new_buyer = first_orders[step.change.pair_key] == step.event_id
        failures = self._run(
            (steps[0].index, partial(self._write_item, key, steps, items.get(key)))
            for key, steps in rest.items()
            if steps
        )
        self._fail(result, failures)
        applied = [i for i in range(self._limit(result, records)) if outcomes[i] == "applied"]
        self._fail(result, self._run((i, partial(self._land, records[i])) for i in applied))
        # one task per order, its events in sequence: the writes to one record never race
        by_order: dict[str, list[int]] = {}
        for i in applied:
            order_id = getattr(records[i].payload, "order_id", None)
            if isinstance(records[i].payload, (OrderPayload, ReturnPayload)) and order_id:
                by_order.setdefault(order_id, []).append(i)
        self._fail(
            result,
            self._run(
                (group[0], partial(self._record_orders, [records[i] for i in group]))
                for group in by_order.values()
            ),
        )
        self._fail(result, self._mark([i for i in applied if i < self._limit(result, records)], event_ids))
        result.outcomes = outcomes[: self._limit(result, records)]
        return result

    @staticmethod
    def _limit(result: BatchResult, records: list[StreamRecord]) -> int:
        return len(records) if result.failed_from is None else result.failed_from

    @staticmethod
    def _fail(result: BatchResult, failures: list[tuple[int, BaseException]]) -> None:
        for index, error in failures:
            if result.failed_from is None or index < result.failed_from:
                result.failed_from, result.error = index, error

    def _run(self, tasks: Iterable[tuple[int, Callable[[], None]]]) -> list[tuple[int, BaseException]]:
        """Run every task on the writer pool; (record index, error) for each one that failed."""
        futures = [(index, self._pool.submit(task)) for index, task in tasks]
        failures = []
        for index, future in futures:
            error = future.exception()
            if error is not None:
                failures.append((index, error))
        return failures

    def _read(self, event_ids: list[str], keys: list[str]) -> tuple[set[str], dict[str, dict[str, Any]]]:
        """Strongly consistent BatchGetItems over the done markers and every item the batch touches."""
        wanted = [(self._idempotency, "id", f"event#{e}") for e in event_ids]
        wanted += [(self._features, "pk", k) for k in keys]
        done: set[str] = set()
        found: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(wanted, BATCH_GET_KEYS):
            request: dict[str, Any] = {}
            for table, name, value in chunk:
                request.setdefault(table, {"Keys": [], "ConsistentRead": True})["Keys"].append(
                    {name: {"S": value}}
                )
            for response in until_processed(
                self._db.batch_get_item, request, what="DynamoDB", retries=MAX_UNPROCESSED_RETRIES
            ):
                for item in response["Responses"].get(self._idempotency, []):
                    done.add(item["id"]["S"].removeprefix("event#"))
                for item in response["Responses"].get(self._features, []):
                    found[item["pk"]["S"]] = item
        return done, found

    def _write_item(
        self,
        key: str,
        steps: list[_Step],
        item: dict[str, Any] | None,
        first_orders: dict[str, str | None] | None = None,
    ) -> None:
        """Fold this batch's changes to one item, in order, and write it once. `item`: as read with the
        batch; after a version conflict it is read again and the fold starts over. With `first_orders`
        (customer_seller items), the item keeps the event that took its order count from 0 to 1
        (`first_order_event`), and `first_orders[key]` gets it."""
        for attempt in range(MAX_VERSION_RETRIES):
            if attempt:
                item = self._db.get_item(
                    TableName=self._features, Key={"pk": {"S": key}}, ConsistentRead=True
                ).get("Item")
            decoded = decode_item(item) if item else {}
            version = int(decoded.get("version", 0))
            positions: dict[str, list[int]] = json.loads(decoded.get("positions") or "{}")
            state: Any = copy.deepcopy(decoded.get("state"))
            first_order: str | None = decoded.get("first_order_event")
            now_ms = int(time.time() * 1000)
            changed = False
            for step in steps:
                seen = positions.get(step.position.shard_id)
                if seen is not None and int(seen[0]) >= step.position.sequence_number:
                    continue  # this record already reached this item
                orders_before = int((state or {}).get("order_count", 0))
                state = step.change(state)
                if first_orders is not None and orders_before == 0 and int(state.get("order_count", 0)):
                    first_order = step.event_id
                positions[step.position.shard_id] = [step.position.sequence_number, now_ms]
                changed = True
            if not changed:
                if first_orders is not None:
                    first_orders[key] = first_order
                return
            positions = {s: p for s, p in positions.items() if now_ms - int(p[1]) < POSITION_KEEP_MS}
            new_item = encode_item(key, state, version + 1)
            new_item["positions"] = {"S": json.dumps(positions, separators=(",", ":"), sort_keys=True)}
            if first_order is not None:
                new_item["first_order_event"] = {"S": first_order}
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
                if first_orders is not None:
                    first_orders[key] = first_order
                return
            except self._db.exceptions.ConditionalCheckFailedException:
                continue  # someone else wrote it: read again and fold again
        raise VersionConflictExhausted(key)

    def _record_orders(self, records: list[StreamRecord]) -> None:
        """One order's events, in order: an order event sets its `order#` record's facts, a return
        event adds itself to the record's returns (a rejected one returned nothing), so a return
        request checks what was paid and what went back also for orders the API never scored. Both
        writes are idempotent and commute: a redelivered record writes them again harmlessly (a
        failure fails the batch from the order's first event here)."""
        for record in records:
            self._record_order(record)

    def _record_order(self, record: StreamRecord) -> None:
        payload = record.payload
        if isinstance(payload, OrderPayload):
            self._order_records.record_order(
                order_id=payload.order_id,
                customer_id=payload.customer_id,
                product_id=payload.product_id,
                amount_minor=amount_to_minor(payload.amount),
                currency=payload.currency,
                order_time_ms=record.envelope.time_ms,
            )
        elif isinstance(payload, ReturnPayload) and payload.status != "rejected":
            self._order_records.record_return(
                order_id=payload.order_id, return_id=payload.return_id, product_id=payload.product_id
            )

    def _land(self, record: StreamRecord) -> None:
        if self._s3 is None or not self._bucket:
            return
        envelope = record.envelope
        day = envelope.event_time.strftime("%Y-%m-%d")
        self._s3.put_object(
            Bucket=self._bucket,
            Key=f"raw/events/event_type={envelope.event_type}/dt={day}/{envelope.event_id}.json",
            Body=record.raw,
            ContentType="application/json",
        )

    def _mark(self, indexes: list[int], event_ids: list[str]) -> list[tuple[int, BaseException]]:
        """The done markers of fully applied events, 25 to a BatchWriteItem, in order; the first
        chunk that cannot be written fails its earliest record (markers are safe to write twice)."""
        now = int(time.time())
        for chunk in _chunks(indexes, BATCH_WRITE_ITEMS):
            pending = {
                self._idempotency: [
                    {
                        "PutRequest": {
                            "Item": {
                                "id": {"S": f"event#{event_ids[i]}"},
                                "applied_at": {"N": str(now)},
                                "expiration": {"N": str(now + MARKER_TTL_SECONDS)},
                            }
                        }
                    }
                    for i in chunk
                ]
            }
            try:
                for _ in until_processed(
                    self._db.batch_write_item, pending, what="DynamoDB", retries=MAX_UNPROCESSED_RETRIES
                ):
                    pass
            except Exception as error:
                return [(chunk[0], error)]
        return []
