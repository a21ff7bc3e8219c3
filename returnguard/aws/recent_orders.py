"""The API's record of each customer's recent orders: `velocity#<customer id>` items in the features table.

The stream applies an order to the customer's aggregate only when its event comes through Kinesis,
which may be after the customer's next order is scored: three orders in one second would all find an
empty velocity window. So the score function records every order it scores here, as it scores it:
one UpdateItem setting `orders.<order id> = order time (ms)`, atomic and idempotent per order id (a
retried request sets the same entry again), removing the entries older than an hour it saw when it
read the item. Scoring reads the item in the same BatchGetItem as the aggregates, and
`returnguard.features.velocity_counts` counts each order id once, whether the API, the stream, or
both know it, so nothing is counted twice once the stream catches up.

Each write also sets `expires_at` (the features table's TTL attribute, which only these items carry)
to two hours after it, so the item of a customer who never orders again is deleted by DynamoDB
instead of staying forever; every new order moves it on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from returnguard.features import VELOCITY_LONG_MS
from returnguard.tables import recent_orders_key

MAX_REMOVED_PER_WRITE = 50  # keeps each UpdateItem's expression small; the rest go with the next order
EXPIRES_AFTER_MS = VELOCITY_LONG_MS + 3_600_000  # past the longest window, plus an hour of clock skew


class RecentOrders:
    """`client` is a boto3 DynamoDB client created once by the caller. `key`: the item of an id (the
    payment lane records by customer and by card: returnguard.payments.recorded_keys)."""

    def __init__(self, client: Any, table_name: str, key: Callable[[str], str] = recent_orders_key):
        self._client = client
        self._table = table_name
        self._key = key

    def record(
        self, customer_id: str, order_id: str, order_time_ms: int, seen: Mapping[str, int], now_ms: int
    ) -> None:
        """Add this order; drop what `seen` (the item as scoring read it) holds from over an hour ago."""
        stale = [
            known
            for known, time_ms in seen.items()
            if time_ms < now_ms - VELOCITY_LONG_MS and known != order_id
        ][:MAX_REMOVED_PER_WRITE]
        names = {"#orders": "orders", "#order": order_id, "#expires": "expires_at"} | {
            f"#stale{i}": known for i, known in enumerate(stale)
        }
        expires = {"N": str((max(now_ms, order_time_ms) + EXPIRES_AFTER_MS) // 1000)}
        expression = "SET #orders.#order = :time, #expires = :expires"
        if stale:
            expression += " REMOVE " + ", ".join(f"#orders.#stale{i}" for i in range(len(stale)))
        key = {"pk": {"S": self._key(customer_id)}}
        time_value = {"N": str(order_time_ms)}
        for _ in range(3):
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression=expression,
                    ConditionExpression="attribute_exists(#orders)",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues={":time": time_value, ":expires": expires},
                )
                return
            except self._client.exceptions.ConditionalCheckFailedException:
                pass  # the customer's first recorded order: create the map, unless someone just did
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression="SET #orders = :orders, #expires = :expires",
                    ConditionExpression="attribute_not_exists(#orders)",
                    ExpressionAttributeNames={"#orders": "orders", "#expires": "expires_at"},
                    ExpressionAttributeValues={":orders": {"M": {order_id: time_value}}, ":expires": expires},
                )
                return
            except self._client.exceptions.ConditionalCheckFailedException:
                continue  # created meanwhile by a concurrent order: add to it
        raise RuntimeError(f"could not record order {order_id} for velocity")  # pragma: no cover
