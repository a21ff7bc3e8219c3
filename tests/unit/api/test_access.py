"""API clients, scopes and keyed decision ids (returnguard.access)."""

from __future__ import annotations

import hashlib
import json

import pytest

from returnguard.access import Client, decision_id, parse_client_scopes, parse_key_clients

SECRET = b"k" * 32


def test_decision_ids_are_keyed_stable_and_per_client() -> None:
    first = decision_id(SECRET, "shop", "order", "1001")
    assert first == decision_id(SECRET, "shop", "order", "1001")  # a retry names the same decision
    assert first != decision_id(b"j" * 32, "shop", "order", "1001")  # another deployment's secret
    assert first != decision_id(SECRET, "other-shop", "order", "1001")  # another client's order 1001
    assert first != decision_id(SECRET, "shop", "return", "1001")
    guessable = "dec_" + hashlib.sha256(b"order\x001001").hexdigest()[:32]  # the old, unkeyed id
    assert first != guessable and first.startswith("dec_") and len(first) == 36


def test_scopes_decide_what_a_client_may_read() -> None:
    shop = Client("shop", frozenset({"score", "read_own"}))
    console = Client("console", frozenset({"read_all"}))
    assert shop.may_score() and shop.may_read("shop") and not shop.may_read("other")
    assert not console.may_score() and console.may_read("shop") and console.may_read(None)
    assert not Client("blind", frozenset({"score"})).may_read("blind")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({}, "non-empty"),
        ([], "non-empty"),
        ({"Shop!": ["score"]}, "client name"),
        ({"shop": []}, "non-empty list"),
        ({"shop": ["score", "admin"]}, "unknown scope"),
    ],
)
def test_bad_client_settings_say_what_is_wrong(value, message) -> None:
    with pytest.raises(ValueError, match=message):
        parse_client_scopes(value)


def test_key_clients_as_the_stack_writes_them() -> None:
    text = json.dumps([{"key_id": "k1", "client": "shop", "scopes": ["read_own", "score"]}])
    assert parse_key_clients(text) == {"k1": Client("shop", frozenset({"score", "read_own"}))}
    with pytest.raises(ValueError, match="key_id"):
        parse_key_clients(json.dumps([{"client": "shop", "scopes": ["score"]}]))
