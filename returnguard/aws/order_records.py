"""The score function's writes of `order#<order id>` records (returnguard.order_record) to the features table.

Each write sets `expires_at` (the table's TTL attribute) to when no return of the order can still be in
its window: the order time plus the deployment's return window plus `DELIVERY_ALLOWANCE_DAYS` for
delivery. Records then stop growing the table without bound; a return asking later is outside the
window by its own facts.
"""

from __future__ import annotations

import time
from typing import Any

from returnguard.order_record import order_record_key
from returnguard.returns_rules import DEFAULT_RETURN_WINDOW_DAYS

DELIVERY_ALLOWANCE_DAYS = 35  # an order delivered this long after it was placed still gets its full window
DAY_S = 86_400


class OrderRecords:
    """`client` is a boto3 DynamoDB client created once by the caller."""

    def __init__(self, client: Any, table_name: str, return_window_days: int = DEFAULT_RETURN_WINDOW_DAYS):
        self._client = client
        self._table = table_name
        self._keep_s = (return_window_days + DELIVERY_ALLOWANCE_DAYS) * DAY_S

    def expires_at(self, order_time_ms: int) -> int:
        return order_time_ms // 1000 + self._keep_s

    def record_order(
        self,
        *,
        order_id: str,
        customer_id: str,
        product_id: str,
        amount_minor: int,
        currency: str,
        order_time_ms: int,
    ) -> None:
        """The order's facts, as decided (one UpdateItem; a retried request sets the same values)."""
        self._client.update_item(
            TableName=self._table,
            Key={"pk": {"S": order_record_key(order_id)}},
            UpdateExpression="SET customer_id = :c, product_id = :p, amount_minor = :a, currency = :cur, "
            "order_time_ms = :t, expires_at = :e",
            ExpressionAttributeValues={
                ":c": {"S": customer_id},
                ":p": {"S": product_id},
                ":a": {"N": str(int(amount_minor))},
                ":cur": {"S": currency},
                ":t": {"N": str(int(order_time_ms))},
                ":e": {"N": str(self.expires_at(int(order_time_ms)))},
            },
        )

    def record_return(self, *, order_id: str, return_id: str, product_id: str) -> None:
        """Add `returned.<return id> = product id` (atomic per return id; the map is made on first use)."""
        key = {"pk": {"S": order_record_key(order_id)}}
        names = {"#returned": "returned", "#return": return_id, "#expires": "expires_at"}
        # an order the API never scored has no order time here: its record is kept a window from now
        expires = {":expires": {"N": str(int(time.time()) + self._keep_s)}}
        for _ in range(3):
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression="SET #returned.#return = :product, "
                    "#expires = if_not_exists(#expires, :expires)",
                    ConditionExpression="attribute_exists(#returned)",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues={":product": {"S": product_id}, **expires},
                )
                return
            except self._client.exceptions.ConditionalCheckFailedException:
                pass  # the order's first return: make the map, unless someone just did
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression="SET #returned = :returned, #expires = if_not_exists(#expires, :expires)",
                    ConditionExpression="attribute_not_exists(#returned)",
                    ExpressionAttributeNames={"#returned": "returned", "#expires": "expires_at"},
                    ExpressionAttributeValues={":returned": {"M": {return_id: {"S": product_id}}}, **expires},
                )
                return
            except self._client.exceptions.ConditionalCheckFailedException:
                continue  # made meanwhile by a concurrent return: add to it
        raise RuntimeError(f"could not record return {return_id}")  # pragma: no cover
