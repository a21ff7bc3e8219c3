"""Who may call what: API clients, their scopes, and decision ids no caller can guess.

Each API client (a merchant back end, the analyst console) has its own API Gateway key; the score
function maps the calling key's id (`requestContext.identity.apiKeyId`) to the client and its scopes:
    score      POST /v1/risk-score
    read_own   GET /v1/decisions/{id} for decisions this client asked for
    read_all   GET /v1/decisions/{id} for any decision (the analyst console)
A decision the caller may not read is answered exactly as one that does not exist (404), so a key
holder learns nothing about other clients' orders. Decision ids are an HMAC of (client, event type,
order id) under a per-deployment secret: stable for retries, unguessable without the secret, and
separate per client (two merchants may both have an order "1001").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SCOPES = ("score", "read_own", "read_all")
CLIENT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
MIN_SECRET_BYTES = 32


class Forbidden(Exception):
    """The calling key may not do this (HTTP 403 `forbidden`)."""

    code = "forbidden"


@dataclass(frozen=True)
class Client:
    name: str
    scopes: frozenset[str]

    def may_score(self) -> bool:
        return "score" in self.scopes

    def may_read(self, owner: str | None) -> bool:
        """May this client read a decision `owner` asked for?"""
        return "read_all" in self.scopes or ("read_own" in self.scopes and owner == self.name)


def parse_client_scopes(value: Any) -> dict[str, tuple[str, ...]]:
    """The `api_clients` setting: {client name: [scope, ...]}; ValueError naming what is wrong."""
    if not isinstance(value, Mapping) or not value:
        raise ValueError(
            'must be a non-empty JSON object of client name -> scopes, e.g. {"shop": ["score", "read_own"]}'
        )
    clients: dict[str, tuple[str, ...]] = {}
    for name, scopes in value.items():
        if not isinstance(name, str) or not CLIENT_NAME.match(name):
            raise ValueError(f"client name {name!r} must be 1-40 lowercase letters, digits or dashes")
        if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
            raise ValueError(f"client {name!r} needs a non-empty list of scopes ({', '.join(SCOPES)})")
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown:
            raise ValueError(
                f"client {name!r} has unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}"
            )
        clients[name] = tuple(s for s in SCOPES if s in scopes)
    return clients


def parse_key_clients(text: str) -> dict[str, Client]:
    """RG_API_CLIENTS: [{"key_id", "client", "scopes"}, ...] as the api stack writes it -> by key id."""
    raw = json.loads(text)
    if not isinstance(raw, list) or not raw:
        raise ValueError('must be a non-empty JSON list of {"key_id", "client", "scopes"}')
    by_key: dict[str, Client] = {}
    for entry in raw:
        if not isinstance(entry, dict) or set(entry) != {"key_id", "client", "scopes"}:
            raise ValueError(f'{entry!r}: needs exactly "key_id", "client" and "scopes"')
        ((name, scopes),) = parse_client_scopes({entry["client"]: entry["scopes"]}).items()
        by_key[str(entry["key_id"])] = Client(name, frozenset(scopes))
    return by_key


def decision_id(secret: bytes, client: str, event_type: str, order_id: str) -> str:
    """`dec_` + 32 hex digits of HMAC-SHA256(secret, client, event type, order id): the same request
    always names the same decision; without the secret no one can name another's."""
    message = "\x00".join((client, event_type, order_id)).encode("utf-8")
    return "dec_" + hmac.new(secret, message, hashlib.sha256).hexdigest()[:32]
