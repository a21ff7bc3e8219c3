"""DynamoDB table definitions: the one description the CDK stack, the local stack and the tests all read."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Key:
    name: str
    type: str = "S"  # DynamoDB attribute type: S, N or B


@dataclass(frozen=True)
class GlobalIndex:
    name: str
    partition_key: Key
    sort_key: Key | None = None


@dataclass(frozen=True)
class TableDefinition:
    """One table: `logical_name` is stable; the deployed name is chosen by the stack (or local stack)."""

    logical_name: str
    partition_key: Key
    sort_key: Key | None = None
    ttl_attribute: str | None = None
    global_indexes: tuple[GlobalIndex, ...] = field(default_factory=tuple)
    purpose: str = ""
    stream_view: str | None = None  # DynamoDB Streams view type (OLD_IMAGE, ...); None: no stream


FEATURES = TableDefinition(
    logical_name="features",
    partition_key=Key("pk"),
    purpose=(
        "Online aggregates per entity, keyed 'entity#id' (customer#C1, product#P1, seller#S1, category#x, "
        "region#y) plus blocklist entries (blocklist_customer#C1, blocklist_address#<address key>, "
        "blocklist_card#<fingerprint>) and the orders the API scored lately per customer (velocity#C1), "
        "so scoring reads everything in one BatchGetItem. Only the velocity# items (and the payment lane's "
        "payment_velocity# and card_velocity#) carry expires_at (TTL)."
    ),
    ttl_attribute="expires_at",
)
DECISIONS = TableDefinition(
    logical_name="decisions",
    partition_key=Key("decision_id"),
    ttl_attribute="expires_at",
    global_indexes=(
        GlobalIndex("by_customer", Key("customer_id"), Key("created_at")),
        # sparse: only a decision that needs a person carries review_queue (its review status), so the
        # console's queue reads the cases that wait, never the whole table (returnguard/aws/reviews.py)
        GlobalIndex("by_review", Key("review_queue"), Key("created_at")),
    ),
    purpose=(
        "Every decision, kept 90 days (TTL); idempotent on (event_type, event id). Its stream (old images) "
        "feeds the archive function, which writes what the TTL removes to processed/predictions/decisions/. "
        "A decision that needs a person carries review_queue (open, then the analyst's verdict): the "
        "sparse by_review index the console's queue reads."
    ),
    stream_view="OLD_IMAGE",
)
EXPLANATIONS = TableDefinition(
    logical_name="explanations",
    partition_key=Key("cache_key"),
    ttl_attribute="expires_at",
    purpose="Cache of LLM narratives keyed by a hash of level + factors + locale.",
)
AUDIT = TableDefinition(
    logical_name="audit",
    partition_key=Key("decision_id"),
    sort_key=Key("recorded_at"),
    purpose="Append-only audit trail: model version, features used, rules, action.",
)
IDEMPOTENCY = TableDefinition(
    logical_name="idempotency",
    partition_key=Key("id"),
    ttl_attribute="expiration",
    purpose="Idempotency records (stream events already applied, retried API calls).",
)

FLAGGED = TableDefinition(
    logical_name="flagged",
    partition_key=Key("file_digest"),
    sort_key=Key("row", "N"),
    ttl_attribute="expires_at",
    purpose="Rows the batch pipeline flagged, by uploaded file (SHA-256 of its bytes) and row; kept 90 days.",
)

ALL_TABLES: tuple[TableDefinition, ...] = (FEATURES, DECISIONS, EXPLANATIONS, AUDIT, IDEMPOTENCY, FLAGGED)


def recent_orders_key(customer_id: str) -> str:
    """The `features` item where the score function records the customer's orders as it scores them
    (velocity before the stream catches up; returnguard/aws/recent_orders.py)."""
    return entity_key("velocity", customer_id)


def entity_key(entity: str, entity_id: str) -> str:
    """The `features` table partition key of one entity's aggregates."""
    return f"{entity}#{entity_id}"


BLOCKLIST_KINDS = ("customer", "address", "card")


def blocklist_key(kind: str, value: str) -> str:
    """The `features` table partition key of one blocklist entry (see FEATURES.purpose)."""
    if kind not in BLOCKLIST_KINDS:
        raise ValueError(f"unknown blocklist kind: {kind}")
    return f"blocklist_{kind}#{value}"
