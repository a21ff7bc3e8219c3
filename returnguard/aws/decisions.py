"""The `decisions` and `audit` tables: idempotent decision records and an append-only trail.

A decision's id is a hash of (event_type, order_id), so a retried request finds its earlier answer.
The stored item carries a hash of the validated, canonical request: a retry of the same request (in
whatever equivalent JSON) gets the stored decision back; the same order id with a different request
is a Conflict (HTTP 409).
Decisions expire after 90 days (`expires_at`, the table's TTL attribute); audit items are only ever
added (a condition refuses to overwrite one).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from returnguard.console import needs_person
from returnguard.schemas import ReturnScoreRequest, RiskScoreRequest, RiskScoreResponse

TTL_SECONDS = 90 * 86_400


class Conflict(Exception):
    """The order id was already decided for a different request body."""

    code = "conflict"

    def __init__(self, decision_id: str):
        super().__init__(f"order already decided with a different request ({decision_id})")
        self.decision_id = decision_id


# per lane: the request's part and its time that defaults to now when left out
DEFAULTED_TIMES = {"order": ("order", "order_time"), "return": ("return_", "return_date")}


def body_hash(request: RiskScoreRequest | ReturnScoreRequest) -> str:
    """SHA-256 of the validated request in its canonical form: every default filled in, strings
    stripped, amounts as numbers, times in UTC, keys sorted. Bodies that say the same thing (a time
    written in +05:30 instead of Z, an explicit `"explain": "template"`) hash the same. An
    `order_time` (a return's `return_date`) left out (now, when it arrived) does not count, so a retry
    without one matches."""
    canonical = request.model_dump(mode="json", by_alias=True)
    for key, (attribute, time_field) in DEFAULTED_TIMES.items():
        part = getattr(request, attribute, None)
        if part is not None and time_field not in part.model_fields_set:
            del canonical[key][time_field]
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class DecisionStore:
    """`client` is a boto3 DynamoDB client created once by the caller."""

    def __init__(self, client: Any, decisions_table: str, audit_table: str):
        self._client = client
        self._decisions = decisions_table
        self._audit = audit_table

    def get(self, decision_id: str) -> dict[str, Any] | None:
        """The stored decision item (`response` parsed), or None."""
        item = self._client.get_item(
            TableName=self._decisions, Key={"decision_id": {"S": decision_id}}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        return {
            "decision_id": item["decision_id"]["S"],
            "body_hash": item["body_hash"]["S"],
            "client": item.get("client", {}).get("S"),  # the API client that asked for it
            "response": json.loads(item["response"]["S"]),
        }

    def get_response(self, decision_id: str) -> dict[str, Any] | None:
        stored = self.get(decision_id)
        return None if stored is None else stored["response"]

    def existing(self, decision_id: str, request_hash: str) -> dict[str, Any] | None:
        """The stored response for a retry, None when never decided; Conflict on a different body."""
        stored = self.get(decision_id)
        if stored is None:
            return None
        if stored["body_hash"] != request_hash:
            raise Conflict(decision_id)
        return stored["response"]

    def save(
        self,
        response: RiskScoreResponse,
        *,
        customer_id: str,
        request_hash: str,
        api_client: str = "",
        features: Mapping[str, float],
        now: datetime | None = None,
        request: Mapping[str, Any] | None = None,
        contributions: Mapping[str, float] | None = None,
        variant: str = "champion",
        shadow: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Write the decision, then its audit item: (answer, False). If this order was already decided:
        (the stored answer, True) for the same body, else Conflict. No read comes first (retries are
        rare). If the audit write fails the decision is deleted again before the error propagates, so
        a decision is never stored without its audit item. (Not a TransactWriteItems: moto copies
        every table on each transaction, which makes the local API slower with every decision.)
        `request` (the validated request) and `contributions` (SHAP, by feature) are kept on the item
        for the review console's case view (returnguard/console.py)."""
        now = now or datetime.now(timezone.utc)
        body = response.model_dump(mode="json")
        created = now.astimezone(timezone.utc).isoformat()
        item = {
            "decision_id": {"S": response.decision_id},
            "customer_id": {"S": customer_id},
            "client": {"S": api_client},
            "created_at": {"S": created},
            "body_hash": {"S": request_hash},
            "response": {"S": json.dumps(body, separators=(",", ":"))},
            "risk_level": {"S": response.risk_level},
            "expires_at": {"N": str(int(now.timestamp()) + TTL_SECONDS)},
            "variant": {"S": variant},  # which model decided: champion or challenger (returnguard.variants)
        }
        if needs_person(response.recommended_action, bool(body.get("review_required"))):
            item["review_queue"] = {"S": "open"}  # the console's sparse queue index (returnguard/tables.py)
        if request is not None:
            item["request"] = {"S": json.dumps(request, separators=(",", ":"), ensure_ascii=False)}
        if contributions:
            item["contributions"] = {"S": json.dumps(dict(contributions), separators=(",", ":"))}
        if shadow:  # the challenger's shadow score, stored for the comparison report, never returned
            item["shadow"] = {
                "M": {k: {"N": str(v)} if k == "score" else {"S": str(v)} for k, v in shadow.items()}
            }
        try:
            self._client.put_item(
                TableName=self._decisions, Item=item, ConditionExpression="attribute_not_exists(decision_id)"
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            existing = self.existing(response.decision_id, request_hash)
            if existing is None:  # pragma: no cover - deleted between the two calls
                raise
            return existing, True
        try:
            self._client.put_item(
                TableName=self._audit,
                Item={**self._audit_item(response, features, created), "variant": {"S": variant}},
                ConditionExpression="attribute_not_exists(decision_id)",
            )
        except Exception:
            # no decision without its audit item: take the decision back so a retry decides afresh
            self._client.delete_item(
                TableName=self._decisions,
                Key={"decision_id": {"S": response.decision_id}},
                ConditionExpression="created_at = :created",
                ExpressionAttributeValues={":created": {"S": created}},
            )
            raise
        return body, False

    @staticmethod
    def _audit_item(
        response: RiskScoreResponse, features: Mapping[str, float], created: str
    ) -> dict[str, Any]:
        return {
            "decision_id": {"S": response.decision_id},
            "recorded_at": {"S": f"{created}#{time.time_ns()}"},
            "model_version": {"S": response.model_version},
            "risk_score": {"S": "" if response.risk_score is None else str(response.risk_score)},
            "risk_level": {"S": response.risk_level},
            "action": {"S": response.recommended_action},
            "rules_triggered": {"S": json.dumps(response.rules_triggered)},
            "degraded": {"BOOL": response.degraded},
            "degraded_reason": {"S": response.degraded_reason or ""},
            "features": {"S": json.dumps(dict(features), sort_keys=True, separators=(",", ":"))},
        }
