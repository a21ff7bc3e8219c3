"""Writes decision archive objects (returnguard.archive) to the lake as Parquet.

pyarrow comes from the AWS SDK for pandas managed layer in Lambda (stacks/layers.py) and from the
project's environment locally; it is imported here, in the adapter, never by the domain.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from returnguard.archive import ARCHIVE_COLUMNS, ArchiveObject, decision_row, is_decision_item

_ARROW_TYPES = {"string": "string", "bigint": "int64", "double": "float64", "boolean": "bool_"}


def parquet_schema() -> Any:
    import pyarrow as pa

    return pa.schema([(name, getattr(pa, _ARROW_TYPES[kind])()) for name, kind in ARCHIVE_COLUMNS])


def parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    """The rows as one Snappy-compressed Parquet file with the archive's schema (columns in its order)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema()
    table = pa.Table.from_pylist([{name: row.get(name) for name in schema.names} for row in rows], schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="snappy")
    return buffer.getvalue()


class DecisionArchive:
    """`client` is a boto3 S3 client created once by the caller; objects take the bucket's default
    encryption (the stage's KMS key)."""

    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def write(self, objects: Iterable[ArchiveObject]) -> list[str]:
        keys = []
        for archive_object in objects:
            self._client.put_object(
                Bucket=self._bucket,
                Key=archive_object.key,
                Body=parquet_bytes(archive_object.rows),
                ContentType="application/vnd.apache.parquet",
            )
            keys.append(archive_object.key)
        return keys


def live_decisions(client: Any, table: str) -> list[dict[str, Any]]:
    """Every decision still in the decisions table (a paginated Scan of `client`, a boto3 DynamoDB
    client) as archive rows: the decisions younger than the 90-day TTL, which the archive does not hold
    yet. A Scan reads the whole table: fine for a report run by hand or daily, not for a request path."""
    rows: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=table):
        rows += [decision_row(item) for item in page.get("Items", []) if is_decision_item(item)]
    return rows
