# ruff: noqa: F811 - `handlers` is the score handler tests' fixture, imported to be used as one
"""Per-client API keys, scopes and keyed decision ids (issue 16 item 8), through the score handler:
the calling key's id (requestContext.identity.apiKeyId) decides what the caller may do, and a
decision it may not read is a 404 like one that does not exist."""

from __future__ import annotations

import hashlib
import json
from types import ModuleType
from typing import Any

import boto3
import pytest
from pydantic import ValidationError

from returnguard import access
from tests.integration.api.test_score_handler import (  # noqa: F401
    call,
    event,
    handlers,
    load_handler,
    order,
)

CLIENTS = [
    {"key_id": "key-shop-a", "client": "shop-a", "scopes": ["score", "read_own"]},
    {"key_id": "key-shop-b", "client": "shop-b", "scopes": ["score", "read_own"]},
    {"key_id": "key-console", "client": "console", "scopes": ["read_all"]},
]
SECRET = "decision-id-secret-made-at-deploy-0123456789"


def as_key(ev: dict[str, Any], key_id: str | None) -> dict[str, Any]:
    ev["requestContext"]["identity"] = {"apiKeyId": key_id, "sourceIp": "203.0.113.9"}
    return ev


@pytest.fixture(scope="module")
def keyed(handlers) -> ModuleType:
    # Given a deployment with three clients and its decision-id secret in Secrets Manager
    arn = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="returnguard/decision-ids", SecretString=SECRET
    )["ARN"]
    patch = pytest.MonkeyPatch()
    patch.setenv("RG_API_CLIENTS", json.dumps(CLIENTS))
    patch.setenv("RG_DECISION_ID_SECRET_ARN", arn)
    patch.delenv("RG_DECISION_ID_SECRET")
    patch.setenv("RG_INFERENCE_URL", handlers["live"].settings.inference_url)
    try:
        yield load_handler("score_handler_keyed")
    finally:
        patch.undo()


def post(module: ModuleType, key_id: str | None, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return call(module, as_key(event("POST", "/v1/risk-score", body), key_id))


def get(module: ModuleType, key_id: str | None, decision_id: str) -> tuple[int, dict[str, Any]]:
    return call(module, as_key(event("GET", f"/v1/decisions/{decision_id}"), key_id))


def test_decision_ids_are_keyed_with_the_deployments_secret(keyed) -> None:
    status, body = post(keyed, "key-shop-a", order("ACL-1"))
    assert status == 200, body
    assert body["decision_id"] == access.decision_id(SECRET.encode(), "shop-a", "order", "ACL-1")
    assert body["decision_id"] != "dec_" + hashlib.sha256(b"order\x00ACL-1").hexdigest()[:32]


def test_a_client_reads_its_own_decisions_and_no_one_elses(keyed) -> None:
    status, mine = post(keyed, "key-shop-a", order("ACL-2"))
    assert status == 200
    assert get(keyed, "key-shop-a", mine["decision_id"]) == (200, mine)
    status, body = get(keyed, "key-shop-b", mine["decision_id"])
    assert status == 404 and body["error"]["code"] == "not_found"  # as if it did not exist
    assert get(keyed, "key-shop-b", "dec_0000")[1] == body
    assert get(keyed, "key-console", mine["decision_id"]) == (200, mine)  # read_all


def test_the_same_order_id_from_two_clients_is_two_decisions_not_a_conflict(keyed) -> None:
    a = post(keyed, "key-shop-a", order("1001"))
    b = post(keyed, "key-shop-b", order("1001", amount=10.0))
    assert a[0] == b[0] == 200 and a[1]["decision_id"] != b[1]["decision_id"]


@pytest.mark.parametrize(
    ("key_id", "method"), [("key-console", "POST"), ("key-unknown", "POST"), (None, "GET")]
)
def test_a_key_without_the_scope_or_without_a_client_is_403(keyed, key_id, method) -> None:
    if method == "POST":
        status, body = post(keyed, key_id, order("ACL-3"))
    else:
        status, body = get(keyed, key_id, "dec_whatever")
    assert status == 403 and body["error"]["code"] == "forbidden", body


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"RG_DECISION_ID_SECRET": None}, "exactly one of RG_DECISION_ID_SECRET_ARN"),
        ({"RG_DECISION_ID_SECRET": "short"}, "at least 32"),
        (
            {"RG_API_CLIENTS": json.dumps([{"key_id": "k", "client": "x", "scopes": ["admin"]}])},
            "RG_API_CLIENTS",
        ),
    ],
)
def test_a_bad_access_setting_fails_the_cold_start(handlers, monkeypatch, variables, message) -> None:
    monkeypatch.delenv("RG_DECISION_ID_SECRET_ARN", raising=False)  # set by the `keyed` fixture
    monkeypatch.setenv("RG_DECISION_ID_SECRET", "a-valid-local-secret-of-40-characters-xx")
    for name, value in variables.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        load_handler("score_handler_bad_access")
