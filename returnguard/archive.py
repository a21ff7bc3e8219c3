"""The decisions archive: what a decision becomes in the lake when DynamoDB's TTL removes it after 90 days.

One row per decision under `processed/predictions/decisions/dt=<day the decision was made>/`, the columns below in
this order (the Glue table the stack declares reads the same list). The archive function receives the
decisions table's stream; only removals made by the TTL service are archived (a decision taken back
because its audit write failed is removed by the score function itself, and was never answered).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

ARCHIVE_PREFIX = "processed/predictions/decisions/"  # beside batch scoring's predictions/payments/
PARTITION = "dt"  # yyyy-mm-dd of created_at (UTC)

# (column, Glue/Athena type). Parquet types follow: string, bigint -> int64, double, boolean.
ARCHIVE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("decision_id", "string"),
    ("order_id", "string"),
    ("customer_id", "string"),
    ("api_client", "string"),
    ("created_at", "string"),  # ISO 8601, UTC
    ("expires_at", "bigint"),  # epoch seconds: the TTL the table removed it at
    ("archived_at", "string"),  # when the stream saw the removal
    ("risk_score", "double"),  # null for a degraded decision without a model score
    ("risk_level", "string"),
    ("recommended_action", "string"),
    ("rules_triggered", "string"),  # JSON list
    ("degraded", "boolean"),
    ("model_version", "string"),
    ("variant", "string"),  # champion | challenger (A-B) ; null for decisions made before variants
    ("shadow_model_version", "string"),
    ("shadow_score", "double"),
    ("response", "string"),  # the full API answer as JSON, as it was returned
)

# What DynamoDB Streams puts in `userIdentity` of a record when TTL (and nothing else) deleted the item.
TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}


class ArchiveError(ValueError):
    """A stream record that cannot be archived (not a decision item); `code` is stable."""

    code = "unarchivable_record"


def is_ttl_expiry(record: Mapping[str, Any]) -> bool:
    """A stream record of an item the TTL process deleted (not one an application deleted)."""
    return record.get("eventName") == "REMOVE" and record.get("userIdentity") == TTL_IDENTITY


def reviewed_decision_ids(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """The decisions among a batch's TTL removals that a person gave a verdict (`review_status` on the
    removed item): the ones the console's similar-cases index holds (returnguard/aws/similar_cases.py)."""
    ids = []
    for record in records:
        image = record.get("dynamodb", {}).get("OldImage") or {}
        if is_ttl_expiry(record) and "review_status" in image and "S" in image.get("decision_id", {}):
            ids.append(image["decision_id"]["S"])
    return ids


def _plain(value: Mapping[str, Any]) -> Any:
    """One DynamoDB typed value ({"S": ...}, {"N": ...}, ...) as a Python value."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return inner
    if kind == "N":
        try:
            return int(inner)
        except ValueError:
            return float(inner)
    if kind == "BOOL":
        return bool(inner)
    if kind == "NULL":
        return None
    if kind == "L":
        return [_plain(v) for v in inner]
    if kind == "M":
        return {k: _plain(v) for k, v in inner.items()}
    raise ArchiveError(f"unsupported DynamoDB type {kind}")


def archive_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """The archive row of one TTL-removal stream record (its OldImage, the decision as stored)."""
    image = record.get("dynamodb", {}).get("OldImage")
    if not image or "decision_id" not in image or "response" not in image:
        raise ArchiveError(
            f"stream record {record.get('eventID')} has no decision in its OldImage "
            "(the decisions table's stream must include old images)"
        )
    seen = record.get("dynamodb", {}).get("ApproximateCreationDateTime")
    archived_at = (
        datetime.fromtimestamp(float(seen), tz=timezone.utc).isoformat() if seen is not None else None
    )
    return decision_row(image, archived_at)


def is_decision_item(image: Mapping[str, Any]) -> bool:
    """A decisions table item (typed) that holds a decision answered to a caller."""
    return "decision_id" in image and "response" in image


def decision_row(image: Mapping[str, Any], archived_at: str | None = None) -> dict[str, Any]:
    """A stored decision (a decisions table item, typed as DynamoDB returns it) in the archive's columns:
    the same row whether the decision was archived at its TTL or read while still in the table (then
    `archived_at` is None), so the comparison report reads both alike."""
    item = {name: _plain(value) for name, value in image.items()}
    try:
        response = json.loads(item["response"])
    except (TypeError, ValueError):
        raise ArchiveError(f"decision {item['decision_id']}: stored response is not JSON") from None
    shadow = item.get("shadow") or {}
    score = response.get("risk_score")
    return {
        "decision_id": item["decision_id"],
        "order_id": response.get("order_id"),
        "customer_id": item.get("customer_id"),
        "api_client": item.get("client"),
        "created_at": item.get("created_at"),
        "expires_at": item.get("expires_at"),
        "archived_at": archived_at,
        "risk_score": None if score is None else float(score),
        "risk_level": response.get("risk_level"),
        "recommended_action": response.get("recommended_action"),
        "rules_triggered": json.dumps(response.get("rules_triggered", [])),
        "degraded": bool(response.get("degraded", False)),
        "model_version": response.get("model_version"),
        "variant": item.get("variant"),
        "shadow_model_version": shadow.get("model_version"),
        "shadow_score": None if shadow.get("score") is None else float(shadow["score"]),
        "response": item["response"],
    }


def partition_of(row: Mapping[str, Any]) -> str:
    """The row's day partition: the UTC date it was decided on."""
    created = str(row.get("created_at") or "")
    try:
        day = datetime.fromisoformat(created.replace("Z", "+00:00")).astimezone(timezone.utc).date()
    except ValueError:
        raise ArchiveError(
            f"decision {row.get('decision_id')}: created_at {created!r} is not a time"
        ) from None
    return day.isoformat()


@dataclass(frozen=True)
class ArchiveObject:
    key: str
    rows: list[dict[str, Any]]


def archive_objects(records: Iterable[Mapping[str, Any]]) -> tuple[list[ArchiveObject], int]:
    """The objects to write for one stream batch, and how many records were skipped (not TTL removals).

    One object per day partition, named after the batch's first sequence number: a batch the event source
    retries starts at the same record, so its objects replace the ones its failed attempt may have left,
    and no decision is archived twice.
    """
    by_day: dict[str, list[dict[str, Any]]] = {}
    first_sequence = ""
    skipped = 0
    for record in records:
        if not is_ttl_expiry(record):
            skipped += 1
            continue
        first_sequence = first_sequence or str(record["dynamodb"]["SequenceNumber"])
        row = archive_row(record)
        by_day.setdefault(partition_of(row), []).append(row)
    objects = [
        ArchiveObject(key=f"{ARCHIVE_PREFIX}{PARTITION}={day}/{first_sequence}.parquet", rows=rows)
        for day, rows in sorted(by_day.items())
    ]
    return objects, skipped
