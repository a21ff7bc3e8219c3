"""The score function's writes of `order#<order id>` records (returnguard.order_record) to the features table."""

from __future__ import annotations

from typing import Any

from returnguard.order_record import order_record_key


class OrderRecords:
    """`client` is a boto3 DynamoDB client created once by the caller."""

    def __init__(self, client: Any, table_name: str):
        self._client = client
        self._table = table_name

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
            "order_time_ms = :t",
            ExpressionAttributeValues={
                ":c": {"S": customer_id},
                ":p": {"S": product_id},
                ":a": {"N": str(int(amount_minor))},
                ":cur": {"S": currency},
                ":t": {"N": str(int(order_time_ms))},
            },
        )

    def record_return(self, *, order_id: str, return_id: str, product_id: str) -> None:
        """Add `returned.<return id> = product id` (atomic per return id; the map is made on first use)."""
        key = {"pk": {"S": order_record_key(order_id)}}
        names = {"#returned": "returned", "#return": return_id}
        for _ in range(3):
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression="SET #returned.#return = :product",
                    ConditionExpression="attribute_exists(#returned)",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues={":product": {"S": product_id}},
                )
                return
            except self._client.exceptions.ConditionalCheckFailedException:
                pass  # the order's first return: make the map, unless someone just did
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression="SET #returned = :returned",
                    ConditionExpression="attribute_not_exists(#returned)",
                    ExpressionAttributeNames={"#returned": "returned"},
                    ExpressionAttributeValues={":returned": {"M": {return_id: {"S": product_id}}}},
                )
                return
            except self._client.exceptions.ConditionalCheckFailedException:
                continue  # made meanwhile by a concurrent return: add to it
        raise RuntimeError(f"could not record return {return_id}")  # pragma: no cover
