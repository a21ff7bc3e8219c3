"""Blocklist sync: MySQL `src_blacklist` -> S3 change files + DynamoDB `blocklist_*` items, incrementally.

One run reads the rows changed since the watermark `(updated_at, id)` in pages; for each page it
cleans the rows, writes one CSV change file to S3 (one PUT: the object is whole or absent), applies
the changes to the `features` table, and only then advances the watermark item
`blocklist_sync#watermark`. A failure anywhere leaves the watermark where it was, so the next run
re-reads the same rows; every write is idempotent (same object key, set add/remove), so a re-run
changes nothing. Malformed rows are skipped, counted by reason and logged by row id only (no PII).

A DynamoDB blocklist item exists while at least one active source row lists it: `source_ids` holds
those row ids (a string set), and the item is deleted when the last one is deactivated. The score
API treats the item's presence as "blocklisted".
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Protocol

from returnguard.aws.feature_store import blocklist_key
from returnguard.features import address_key, normalize_address

logger = logging.getLogger(__name__)

SOURCE_TABLE = "src_blacklist"
# The source table this sync expects (MySQL 8 / MariaDB 10.6+). Only `id` and `updated_at` must be
# trustworthy: everything else is cleaned, and rows that can't be cleaned are skipped and counted.
CREATE_SOURCE_TABLE = """
CREATE TABLE IF NOT EXISTS src_blacklist (
  id          BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  entity_type VARCHAR(32)  NULL,      -- customer | address | card
  `value`     VARCHAR(512) NULL,      -- customer id, delivery address, or card fingerprint
  reason      VARCHAR(512) NULL,
  listed_at   DATETIME(3)  NULL,      -- UTC
  updated_at  DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  active      TINYINT(1)   NULL DEFAULT 1,
  KEY src_blacklist_changes (updated_at, id)
)
"""
WATERMARK_KEY = "blocklist_sync#watermark"
SNAPSHOT_PREFIX = "raw/blocklist"
SNAPSHOT_COLUMNS = ("id", "entity_type", "entity_key", "reason", "listed_at", "updated_at", "active")
MAX_REASON_LENGTH = 200
_CARD = re.compile(r"^[0-9a-f]{16,64}$")
_SEPARATORS = re.compile(r"[\s\-:]")
_PLURALS = {"customers": "customer", "addresses": "address", "cards": "card"}
_TRUE = {"1", "true", "t", "yes", "y", "active"}
_FALSE = {"0", "false", "f", "no", "n", "inactive"}


class BlocklistSyncError(RuntimeError):
    """The sync stopped; nothing after the last completed page was committed. `code` is stable."""

    code = "blocklist_sync_failed"


class BlocklistSourceUnavailable(BlocklistSyncError):
    code = "blocklist_source_unavailable"


class BlocklistSecretInvalid(BlocklistSyncError):
    code = "blocklist_secret_invalid"


class BlocklistWriteFailed(BlocklistSyncError):
    code = "blocklist_write_failed"


@dataclass(frozen=True, order=True)
class Watermark:
    """The last source row applied, in `(updated_at, id)` order (UTC, naive as MySQL returns it)."""

    updated_at: datetime = datetime(1970, 1, 1)
    id: int = 0

    def to_json(self) -> str:
        return json.dumps({"updated_at": self.updated_at.isoformat(), "id": self.id}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Watermark:
        data = json.loads(text)
        return cls(datetime.fromisoformat(data["updated_at"]), int(data["id"]))


@dataclass(frozen=True)
class BlocklistEntry:
    """One cleaned source row. `entity_key` is what the features table and the rules job key on."""

    id: int
    entity_type: str
    entity_key: str
    reason: str
    listed_at: datetime | None
    updated_at: datetime
    active: bool

    @property
    def item_key(self) -> str:
        return blocklist_key(self.entity_type, self.entity_key)


class MalformedRow(ValueError):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class SyncResult:
    rows_read: int = 0
    upserted: int = 0
    removed: int = 0
    skipped: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    snapshots: list[str] = field(default_factory=list)
    watermark: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class BlocklistSource(Protocol):
    def read_changes(self, after: Watermark, limit: int) -> list[Mapping[str, Any]]:
        """Rows with `(updated_at, id) > after`, in that order, at most `limit`."""
        ...


# ---------------------------------------------------------------------------------------------- cleaning


def clean_row(row: Mapping[str, Any]) -> BlocklistEntry:
    """Trim and normalise one source row; raises MalformedRow(reason) when it can't be used."""
    entity_type = _text(row.get("entity_type")).lower()
    entity_type = _PLURALS.get(entity_type, entity_type)
    if entity_type not in _PLURALS.values():
        raise MalformedRow("unknown_entity_type")
    value = _text(row.get("value"))
    if not value:
        raise MalformedRow("missing_value")
    if entity_type == "address":
        key = address_key(normalize_address(value))
    elif entity_type == "card":
        key = _SEPARATORS.sub("", value).lower()
        if not _CARD.match(key):
            raise MalformedRow("invalid_card_fingerprint")
    else:
        key = value
    updated_at = parse_time(row.get("updated_at"))
    if updated_at is None:
        raise MalformedRow("invalid_updated_at")
    active = _flag(row.get("active"))
    reason = " ".join(_text(row.get("reason")).split())[:MAX_REASON_LENGTH]
    return BlocklistEntry(
        id=int(row["id"]),
        entity_type=entity_type,
        entity_key=key,
        reason=reason,
        listed_at=parse_time(row.get("listed_at")) or updated_at,
        updated_at=updated_at,
        active=active,
    )


def parse_time(value: Any) -> datetime | None:
    """A UTC naive datetime from what MySQL drivers return (datetime, date, text); None when unusable."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    text = _text(value)
    if not text or text.startswith("0000-00-00"):
        return None
    for pattern in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(text.rstrip("Z"), pattern)
        except ValueError:
            continue
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return str(value).strip()


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = _text(value).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise MalformedRow("invalid_active")


# ---------------------------------------------------------------------------------------------- adapters


class MySQLBlocklistSource:
    """`src_blacklist` over pymysql; credentials come from a Secrets Manager secret, never the environment.

    The secret is JSON `{host, port, username, password, dbname}`; `database` (RG_DB_NAME) overrides
    `dbname`. A connection is opened per run and closed after it. It is TLS or nothing: the server's
    certificate must chain to `ca_bundle` (the RDS CA bundle in Lambda) and name the host; a server
    without TLS, or with another certificate, is refused before credentials are sent.
    """

    def __init__(
        self,
        secrets_client: Any,
        secret_arn: str,
        database: str | None = None,
        connect_timeout: int = 5,
        *,
        ca_bundle: str,
    ):
        self._secrets = secrets_client
        self._secret_arn = secret_arn
        self._database = database
        self._timeout = connect_timeout
        self._ca_bundle = ca_bundle

    def _credentials(self) -> dict[str, Any]:
        try:
            secret = json.loads(self._secrets.get_secret_value(SecretId=self._secret_arn)["SecretString"])
            return {
                "host": str(secret["host"]),
                "port": int(secret.get("port", 3306)),
                "user": str(secret["username"]),
                "password": str(secret["password"]),
                "database": self._database or str(secret["dbname"]),
            }
        except Exception as error:  # the message must not echo the secret's content
            raise BlocklistSecretInvalid(
                f"database secret unreadable or missing a field ({type(error).__name__})"
            ) from None

    def connect(self) -> Any:
        """A pymysql connection over verified TLS (raises pymysql's errors; read_changes wraps them)."""
        import pymysql
        import pymysql.cursors

        credentials = self._credentials()
        if not os.path.isfile(self._ca_bundle):
            raise BlocklistSourceUnavailable(f"CA bundle {self._ca_bundle} not found: TLS cannot be verified")
        return pymysql.connect(
            **credentials,
            connect_timeout=self._timeout,
            read_timeout=30,
            cursorclass=pymysql.cursors.DictCursor,
            init_command="SET time_zone = '+00:00'",
            ssl_ca=self._ca_bundle,  # TLS required: pymysql refuses a server that does not offer it
            ssl_verify_cert=True,
            ssl_verify_identity=True,
        )

    def read_changes(self, after: Watermark, limit: int) -> list[Mapping[str, Any]]:
        import pymysql

        try:
            connection = self.connect()
            try:
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT id, entity_type, `value`, reason, listed_at, updated_at, active "
                        f"FROM {SOURCE_TABLE} WHERE updated_at > %s OR (updated_at = %s AND id > %s) "
                        "ORDER BY updated_at, id LIMIT %s",
                        (after.updated_at, after.updated_at, after.id, limit),
                    )
                    return list(cursor.fetchall())
            finally:
                connection.close()
        except pymysql.MySQLError as error:
            number = error.args[0] if error.args else "?"
            raise BlocklistSourceUnavailable(
                f"cannot read {SOURCE_TABLE} ({type(error).__name__} {number})"
            ) from error


class S3SnapshotWriter:
    """Change files `raw/blocklist/dt=<date of the page's last change>/changes-<watermark>.csv`.

    The key is a function of the page, so a retried page overwrites its own file with the same bytes.
    """

    def __init__(self, s3_client: Any, bucket: str, prefix: str = SNAPSHOT_PREFIX):
        self._s3 = s3_client
        self._bucket = bucket
        self._prefix = prefix

    def write(self, entries: list[BlocklistEntry], last: Watermark) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(SNAPSHOT_COLUMNS)
        for e in entries:
            writer.writerow(
                [
                    e.id,
                    e.entity_type,
                    e.entity_key,
                    e.reason,
                    _iso(e.listed_at),
                    _iso(e.updated_at),
                    "true" if e.active else "false",
                ]
            )
        stamp = last.updated_at.strftime("%Y%m%dT%H%M%S%f")
        key = f"{self._prefix}/dt={last.updated_at:%Y-%m-%d}/changes-{stamp}-{last.id:012d}.csv"
        try:
            self._s3.put_object(
                Bucket=self._bucket, Key=key, Body=buffer.getvalue().encode("utf-8"), ContentType="text/csv"
            )
        except Exception as error:
            raise BlocklistWriteFailed(f"snapshot write failed ({type(error).__name__})") from error
        return key


class DynamoBlocklistTable:
    """Blocklist items and the sync watermark in the `features` table."""

    def __init__(self, dynamodb_client: Any, table_name: str):
        self._db = dynamodb_client
        self._table = table_name

    def apply(self, entry: BlocklistEntry) -> str:
        """Add or withdraw one source row's listing; returns "upserted" or "removed"."""
        key = {"pk": {"S": entry.item_key}}
        source_id = {"SS": [str(entry.id)]}
        if entry.active:
            self._db.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression=(
                    "SET entity_type = :type, entity_key = :key, reason = :reason, listed_at = :listed "
                    "ADD source_ids :id"
                ),
                ExpressionAttributeValues={
                    ":type": {"S": entry.entity_type},
                    ":key": {"S": entry.entity_key},
                    ":reason": {"S": entry.reason},
                    ":listed": {"S": _iso(entry.listed_at)},
                    ":id": source_id,
                },
            )
            return "upserted"
        conditional_failed = self._db.exceptions.ConditionalCheckFailedException
        try:  # withdraw this row's listing, but never create an item while doing so
            self._db.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression="DELETE source_ids :id",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":id": source_id},
            )
        except conditional_failed:
            return "removed"
        # DynamoDB drops an emptied set: no listing row left means no item; otherwise another keeps it.
        with contextlib.suppress(conditional_failed):
            self._db.delete_item(
                TableName=self._table, Key=key, ConditionExpression="attribute_not_exists(source_ids)"
            )
        return "removed"

    def read_watermark(self) -> Watermark:
        item = self._db.get_item(TableName=self._table, Key={"pk": {"S": WATERMARK_KEY}}, ConsistentRead=True)
        state = item.get("Item", {}).get("state", {}).get("S")
        return Watermark.from_json(state) if state else Watermark()

    def advance_watermark(self, previous: Watermark, new: Watermark) -> None:
        """Store `new` if the stored watermark is still `previous` (two runs never interleave silently)."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Item": {"pk": {"S": WATERMARK_KEY}, "state": {"S": new.to_json()}},
        }
        if previous == Watermark():
            kwargs["ConditionExpression"] = "attribute_not_exists(pk) OR #s = :previous"
        else:
            kwargs["ConditionExpression"] = "#s = :previous"
        kwargs["ExpressionAttributeNames"] = {"#s": "state"}
        kwargs["ExpressionAttributeValues"] = {":previous": {"S": previous.to_json()}}
        self._db.put_item(**kwargs)


# ---------------------------------------------------------------------------------------------- the sync


def sync(
    source: BlocklistSource,
    snapshots: S3SnapshotWriter,
    table: DynamoBlocklistTable,
    page_size: int = 1000,
) -> SyncResult:
    """Apply every source change since the stored watermark; see the module docstring for guarantees."""
    result = SyncResult()
    watermark = table.read_watermark()
    skipped: Counter[str] = Counter()
    while True:
        rows = source.read_changes(watermark, page_size)
        if not rows:
            break
        entries = _clean_page(rows, skipped)
        last = Watermark(_row_time(rows[-1]), int(rows[-1]["id"]))
        try:
            if entries:
                result.snapshots.append(snapshots.write(entries, last))
                for entry in entries:
                    outcome = table.apply(entry)
                    result.upserted += outcome == "upserted"
                    result.removed += outcome == "removed"
            table.advance_watermark(watermark, last)
        except BlocklistSyncError:
            raise
        except Exception as error:
            raise BlocklistWriteFailed(f"blocklist write failed ({type(error).__name__})") from error
        watermark = last
        result.rows_read += len(rows)
        if len(rows) < page_size:
            break
    result.skipped = sum(skipped.values())
    result.skipped_by_reason = dict(sorted(skipped.items()))
    result.watermark = watermark.to_json()
    logger.info(
        "blocklist sync done",
        extra={k: v for k, v in result.as_dict().items() if k != "snapshots"},
    )
    return result


def _clean_page(rows: Iterable[Mapping[str, Any]], skipped: Counter[str]) -> list[BlocklistEntry]:
    entries = []
    for row in rows:
        try:
            entries.append(clean_row(row))
        except MalformedRow as error:
            skipped[error.reason] += 1
            # The row id only: values are customer ids, addresses and card fingerprints.
            logger.warning(
                "skipped malformed blocklist row", extra={"row_id": row.get("id"), "reason": error.reason}
            )
    return entries


def _row_time(row: Mapping[str, Any]) -> datetime:
    parsed = parse_time(row.get("updated_at"))
    if parsed is None:  # the source query orders by updated_at, which is NOT NULL
        raise BlocklistSourceUnavailable("source row without updated_at")
    return parsed


def _iso(value: datetime | None) -> str:
    return "" if value is None else value.isoformat(timespec="milliseconds")
