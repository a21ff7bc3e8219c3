"""The console's data access: decisions waiting for a person, a case's audit trail, and verdicts.

A verdict is written three times, in this order: on the decision item (review_status, reviewed_by and
reviewed_by_sub (the user name and the token's subject), reviewed_at, review_note; a condition refuses a second final verdict), as an append-only audit item
(`verdict#<time>` in the audit table: who, role, when, verdict, note), and, for confirmed abuse or
legitimate, as one label row in the lake's raw/labels/dt=<day>/ (the label store the feature job reads,
so the next training table carries it with its labeled_at). If the audit or label write fails, the
decision item is put back as it was before the error propagates: a verdict is all there or not there.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from returnguard.console import (
    Case,
    ConsoleError,
    Verdict,
    case_from_record,
    check_can_decide,
    label_row,
    needs_person,
)

# review_queue: the key of the decisions' sparse by_review index (returnguard/tables.py): "open" from the
# score function when a decision needs a person, then the verdict, so the index keeps only review cases
_REVIEW_ATTRIBUTES = (
    "review_status",
    "reviewed_by",
    "reviewed_by_sub",
    "reviewed_at",
    "review_note",
    "review_queue",
)
REVIEW_ATTRIBUTES = _REVIEW_ATTRIBUTES  # what a verdict sets: the console role may update only these
REVIEW_INDEX = "by_review"
REVIEW_PARTITIONS = ("open", "need_more_info", "confirmed_abuse", "legitimate")
FLAGGED_PREFIX = "flagged#"  # the console's id of a batch row: flagged#<file digest>#<row>


def flagged_id(digest: str, row: int) -> str:
    return f"{FLAGGED_PREFIX}{digest}#{row}"


def flagged_record(item: dict[str, Any]) -> dict[str, Any]:
    """A flagged batch row (the batch pipeline's `flagged` table) as a decision record for the queue.
    Its factors are only the top few raising ones, so no waterfall is drawn from them."""
    factors = json.loads(item.get("factors") or "[]")
    row = int(item["row"])
    score = item.get("score")
    reference = item.get("transaction_id") or f"{item.get('source_key', 'file')} row {row}"
    return {
        **{name: item[name] for name in _REVIEW_ATTRIBUTES if name in item},
        "decision_id": flagged_id(item["file_digest"], row),
        "lane": "batch",
        "flagged": True,
        "order_id": reference,
        "created_at": datetime.fromtimestamp(float(item.get("flagged_at") or 0), timezone.utc).isoformat(),
        "model_version": item.get("model_version", ""),
        "response": {
            "recommended_action": "flagged_row",
            "risk_score": score,
            "explanation": {
                "summary": f"Row {row} of {item.get('source_key', 'an uploaded file')} scored above the alert threshold.",
                "key_factors": [
                    f"{f.get('feature')} = {f.get('value')} (+{float(f.get('contribution', 0)):.3f} log-odds)"
                    for f in factors
                ],
            },
        },
    }


def plain(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item with its type tags removed (S, N, BOOL, NULL; others as they are)."""
    out: dict[str, Any] = {}
    for name, typed in item.items():
        ((kind, value),) = typed.items()
        out[name] = float(value) if kind == "N" else None if kind == "NULL" else value
    return out


class LabelSink(Protocol):
    def write(self, row: dict[str, Any], name: str) -> str:
        """Write one label row as raw/labels/dt=<labeled_at day>/<name>.parquet; return where."""
        ...


def _parquet(row: dict[str, Any]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("order_id", pa.string()),
            ("is_abuse", pa.int64()),
            ("abuse_type", pa.string()),
            ("labeled_at", pa.timestamp("ms", tz="UTC")),
        ]
    )
    table = pa.Table.from_pylist([row], schema=schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _label_key(row: dict[str, Any], name: str) -> str:
    return f"labels/dt={row['labeled_at']:%Y-%m-%d}/{name}.parquet"


class FileLabelSink:
    """The local lake: <raw>/labels/dt=…/ on disk (build/demo/lake/raw for the demo)."""

    def __init__(self, raw: str | Path):
        self.raw = Path(raw)

    def write(self, row: dict[str, Any], name: str) -> str:
        path = self.raw / _label_key(row, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{path.name}.tmp")
        staging.write_bytes(_parquet(row))
        staging.replace(path)  # a reader never sees half a file
        return str(path)


class S3LabelSink:
    """The lake bucket's raw/labels/ prefix."""

    def __init__(self, client: Any, bucket: str, prefix: str = "raw/"):
        self._client, self._bucket, self._prefix = client, bucket, prefix

    def write(self, row: dict[str, Any], name: str) -> str:
        key = self._prefix + _label_key(row, name)
        self._client.put_object(Bucket=self._bucket, Key=key, Body=_parquet(row))
        return f"s3://{self._bucket}/{key}"


class ReviewStore:
    """`client`: a boto3 DynamoDB client created once by the caller."""

    def __init__(
        self,
        client: Any,
        decisions_table: str,
        audit_table: str,
        labels: LabelSink,
        flagged_table: str | None = None,
    ):
        self._client = client
        self._decisions = decisions_table
        self._audit = audit_table
        self._labels = labels
        self._flagged = flagged_table

    def records(self) -> Iterator[dict[str, Any]]:
        """Every decision record (one Scan, paged) and every flagged batch row, without audit trails."""
        paginator = self._client.get_paginator("scan")
        for page in paginator.paginate(TableName=self._decisions):
            for item in page.get("Items", []):
                yield plain(item)
        if self._flagged:
            for page in paginator.paginate(TableName=self._flagged):
                for item in page.get("Items", []):
                    yield flagged_record(plain(item))

    def review_cases(self, statuses: Iterable[str] = REVIEW_PARTITIONS) -> list[Case]:
        """The decisions that needed a person, in these review statuses, from the sparse by_review index
        (one Query per status, paged; never a Scan of the decisions), and the flagged batch rows (a table
        of flagged rows only)."""
        cases: list[Case] = []
        paginator = self._client.get_paginator("query")
        for status in dict.fromkeys(statuses):
            for page in paginator.paginate(
                TableName=self._decisions,
                IndexName=REVIEW_INDEX,
                KeyConditionExpression="review_queue = :q",
                ExpressionAttributeValues={":q": {"S": status}},
            ):
                cases.extend(case_from_record(plain(item)) for item in page.get("Items", []))
        if self._flagged:
            for page in self._client.get_paginator("scan").paginate(TableName=self._flagged):
                cases.extend(case_from_record(flagged_record(plain(item))) for item in page.get("Items", []))
        return cases

    def _locate(self, decision_id: str) -> tuple[str, dict[str, Any]] | None:
        """(table, key) of a decision or a flagged row; None for an id that can be neither."""
        if decision_id.startswith(FLAGGED_PREFIX):
            digest, _, row = decision_id.removeprefix(FLAGGED_PREFIX).rpartition("#")
            if not self._flagged or not digest or not row.isdigit():
                return None
            return self._flagged, {"file_digest": {"S": digest}, "row": {"N": row}}
        return self._decisions, {"decision_id": {"S": decision_id}}

    def cases(self) -> list[Case]:
        return [case_from_record(record) for record in self.records()]

    def case(self, decision_id: str) -> Case | None:
        located = self._locate(decision_id)
        if located is None:
            return None
        table, key = located
        item = self._client.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        if item is None:
            return None
        record = plain(item)
        return case_from_record(flagged_record(record) if table == self._flagged else record)

    def customer_cases(self, customer_id: str, limit: int = 50) -> list[Case]:
        """The customer's decisions, newest first (the by_customer index)."""
        if not customer_id:  # a batch row names no customer
            return []
        response = self._client.query(
            TableName=self._decisions,
            IndexName="by_customer",
            KeyConditionExpression="customer_id = :c",
            ExpressionAttributeValues={":c": {"S": customer_id}},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [case_from_record(plain(item)) for item in response.get("Items", [])]

    def trail(self, decision_id: str) -> list[dict[str, Any]]:
        """The decision's audit items, oldest first (the decision itself, then any verdicts)."""
        response = self._client.query(
            TableName=self._audit,
            KeyConditionExpression="decision_id = :d",
            ExpressionAttributeValues={":d": {"S": decision_id}},
        )
        return [plain(item) for item in response.get("Items", [])]

    def features(self, decision_id: str) -> dict[str, float]:
        """The feature vector the decision was made on (its first audit item)."""
        for item in self.trail(decision_id):
            if "features" in item:
                return {k: float(v) for k, v in json.loads(item["features"]).items()}
        return {}

    def record(self, case: Case, verdict: Verdict) -> str | None:
        """Store the verdict (see the module's docstring); return where its label went, or None."""
        check_can_decide(case, verdict)
        located = self._locate(case.decision_id)
        if located is None:
            raise ConsoleError(404, "not_found", "no such decision")
        table, key = located
        when = verdict.recorded_at.isoformat()
        previous = self._client.get_item(
            TableName=table, Key=key, ProjectionExpression=", ".join(_REVIEW_ATTRIBUTES), ConsistentRead=True
        ).get("Item", {})
        try:
            self._client.update_item(
                TableName=table,
                Key=key,
                UpdateExpression="SET review_status = :v, reviewed_by = :by, reviewed_by_sub = :sub, "
                "reviewed_at = :at, review_note = :n, review_queue = :v",
                ConditionExpression=f"attribute_exists({next(iter(key))}) AND "
                "(attribute_not_exists(review_status) OR review_status = :more)",
                ExpressionAttributeValues={
                    ":v": {"S": verdict.verdict},
                    ":by": {"S": verdict.reviewer},
                    ":sub": {"S": verdict.reviewer_sub},
                    ":at": {"S": when},
                    ":n": {"S": verdict.note},
                    ":more": {"S": "need_more_info"},
                },
            )
        except self._client.exceptions.ConditionalCheckFailedException as error:
            raise ConsoleError(
                409, "already_decided", "this case was decided by someone else meanwhile"
            ) from error
        try:
            self._client.put_item(
                TableName=self._audit,
                Item={
                    "decision_id": {"S": case.decision_id},
                    "recorded_at": {"S": f"verdict#{when}#{time.time_ns()}"},
                    "verdict": {"S": verdict.verdict},
                    "reviewer": {"S": verdict.reviewer},
                    "reviewer_sub": {"S": verdict.reviewer_sub},
                    "role": {"S": verdict.role},
                    "note": {"S": verdict.note},
                },
                ConditionExpression="attribute_not_exists(decision_id)",
            )
            row = label_row(case, verdict)
            return None if row is None else self._labels.write(row, f"verdict-{case.decision_id}")
        except Exception:
            self._restore(table, key, previous)
            raise

    def _restore(self, table: str, key: dict[str, Any], previous: dict[str, Any]) -> None:
        kept = {name: previous[name] for name in _REVIEW_ATTRIBUTES if name in previous}
        removed = [name for name in _REVIEW_ATTRIBUTES if name not in previous]
        clauses = []
        if kept:
            clauses.append("SET " + ", ".join(f"{name} = :{name}" for name in kept))
        if removed:
            clauses.append("REMOVE " + ", ".join(removed))
        self._client.update_item(
            TableName=table,
            Key=key,
            UpdateExpression=" ".join(clauses),
            **({"ExpressionAttributeValues": {f":{k}": v for k, v in kept.items()}} if kept else {}),
        )


def backfill_review_queue(client: Any, decisions_table: str) -> int:
    """Put each decision stored before the by_review index (no review_queue yet) that needs a person into
    the index: review_queue = its review status (`open` when none). One paged Scan; each update is
    conditional, so a run can be repeated or interrupted and resumed. Returns how many it added."""
    added = 0
    pages = client.get_paginator("scan").paginate(
        TableName=decisions_table,
        FilterExpression="attribute_not_exists(review_queue)",
        ProjectionExpression="decision_id, #r, review_status, lane, flagged",
        ExpressionAttributeNames={"#r": "response"},
    )
    for page in pages:
        for item in page.get("Items", []):
            case = case_from_record(plain(item))
            if not needs_person(case.action, case.flagged):
                continue
            try:
                client.update_item(
                    TableName=decisions_table,
                    Key={"decision_id": item["decision_id"]},
                    UpdateExpression="SET review_queue = :q",
                    ConditionExpression="attribute_exists(decision_id) AND attribute_not_exists(review_queue)",
                    ExpressionAttributeValues={":q": {"S": case.status}},
                )
            except client.exceptions.ConditionalCheckFailedException:
                continue  # expired meanwhile, or a verdict or another run got there first
            added += 1
    return added


def main(argv: list[str] | None = None) -> int:
    """`python -m returnguard.aws.reviews backfill-queue --table <decisions table>` (docs/console.md)."""
    import argparse

    import boto3

    parser = argparse.ArgumentParser(prog="python -m returnguard.aws.reviews")
    parser.add_argument("command", choices=["backfill-queue"])
    parser.add_argument("--table", required=True, help="the stage's decisions table")
    parser.add_argument("--region", default=None)
    args = parser.parse_args(argv)
    added = backfill_review_queue(boto3.client("dynamodb", region_name=args.region), args.table)
    print(f"{added} waiting or reviewed decisions added to the by_review index of {args.table}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
