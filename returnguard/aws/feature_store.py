"""DynamoDB `features` table adapter: one BatchGetItem for scoring, versioned writes for the stream.

An aggregate is stored as a JSON document in `state` with a `version` number; writers update it with a
condition on the version they read (optimistic concurrency), so concurrent stream batches never lose
an update and no float/Decimal conversion touches the numbers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from returnguard.aws.batches import until_processed
from returnguard.ports import FeatureStore
from returnguard.tables import BLOCKLIST_KINDS, blocklist_key, entity_key

__all__ = ["BLOCKLIST_KINDS", "DynamoFeatureStore", "FeatureStore", "InMemoryFeatureStore", "blocklist_key"]


class VersionConflict(Exception):
    """Someone else wrote the item since it was read; read again and retry."""


class DynamoFeatureStore:
    """The `features` table. `client` is a boto3 DynamoDB client created once by the caller."""

    def __init__(self, client: Any, table_name: str):
        self._client = client
        self._table = table_name

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        wanted = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), 100):  # BatchGetItem takes at most 100 keys
            request: dict[str, Any] = {
                self._table: {
                    "Keys": [{"pk": {"S": k}} for k in wanted[start : start + 100]],
                    "ConsistentRead": False,
                }
            }
            for response in until_processed(
                self._client.batch_get_item, request, what="features table", retries=4, first_backoff_s=0.02
            ):
                for item in response.get("Responses", {}).get(self._table, []):
                    found[item["pk"]["S"]] = decode_item(item)
        return found

    def get_aggregate(self, entity: str, entity_id: str) -> tuple[dict[str, Any] | None, int]:
        """(state, version) of one entity; (None, 0) when unseen."""
        response = self._client.get_item(
            TableName=self._table, Key={"pk": {"S": entity_key(entity, entity_id)}}, ConsistentRead=True
        )
        item = response.get("Item")
        if item is None:
            return None, 0
        decoded = decode_item(item)
        return decoded.get("state"), int(decoded.get("version", 0))

    def put_aggregate(
        self, entity: str, entity_id: str, state: Mapping[str, Any], expected_version: int
    ) -> int:
        """Write state if the stored version is still `expected_version`; returns the new version."""
        new_version = expected_version + 1
        condition = "attribute_not_exists(pk)" if expected_version == 0 else "version = :expected"
        values: dict[str, Any] = {} if expected_version == 0 else {":expected": {"N": str(expected_version)}}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Item": encode_item(entity_key(entity, entity_id), state, new_version),
            "ConditionExpression": condition,
        }
        if values:
            kwargs["ExpressionAttributeValues"] = values
        try:
            self._client.put_item(**kwargs)
        except self._client.exceptions.ConditionalCheckFailedException as error:
            raise VersionConflict(entity_key(entity, entity_id)) from error
        return new_version


def encode_item(pk: str, state: Mapping[str, Any], version: int) -> dict[str, Any]:
    return {
        "pk": {"S": pk},
        "state": {"S": json.dumps(state, separators=(",", ":"), sort_keys=True)},
        "version": {"N": str(version)},
        "updated_at": {"N": str(int(time.time()))},
    }


def decode_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A raw DynamoDB item to plain Python; `state` JSON documents are parsed."""
    out: dict[str, Any] = {}
    for name, value in item.items():
        ((kind, raw),) = value.items()
        if kind == "N":
            out[name] = int(raw) if raw.lstrip("-").isdigit() else float(raw)
        elif kind == "S" and name == "state":
            out[name] = json.loads(raw)
        elif kind == "BOOL":
            out[name] = bool(raw)
        elif kind == "NULL":
            out[name] = None
        elif kind == "M":  # e.g. a velocity# item's orders: {order id: {"N": time}}
            out[name] = decode_item(raw)
        else:
            out[name] = raw
    return out


class InMemoryFeatureStore:
    """The same interface over a dict: for unit tests and the offline CLI."""

    def __init__(self, items: Mapping[str, Mapping[str, Any]] | None = None):
        self.items: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (items or {}).items()}
        self.batch_calls = 0

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        self.batch_calls += 1
        return {k: self.items[k] for k in keys if k in self.items}
