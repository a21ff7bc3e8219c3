"""Bounded AWS calls against a real moto server behind a proxy that freezes it (local/faults.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import BotoCoreError

from local import stack as local_stack
from local.faults import FaultProxy
from returnguard.aws.clients import DYNAMODB, BudgetExhausted, RequestBudget
from returnguard.aws.feature_store import DynamoFeatureStore

HARD_STOP_S = 30  # a test that would hang (unbounded client) fails here instead


@pytest.fixture(scope="module")
def frozen_store() -> Iterator[tuple[FaultProxy, str]]:
    stack = local_stack.start(prefix="returnguard-bounds")
    proxy = FaultProxy("127.0.0.1", int(stack.endpoint_url.rsplit(":", 1)[1]))
    try:
        yield proxy, stack.table_names["features"]
    finally:
        proxy.stop()
        stack.stop()


def _client(url: str, config: Any) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=config,
    )


def _within(seconds: float, call: Callable[[], Any]) -> tuple[Any, float]:
    """(the call's exception or result, elapsed s); fails after `seconds` instead of hanging."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as error:  # the outcome under test
            outcome.append(error)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"the call was still running after {seconds} s"
    return outcome[0], time.monotonic() - started


def test_a_frozen_store_fails_a_read_after_the_bounded_attempts(frozen_store) -> None:
    proxy, table = frozen_store
    client = _client(proxy.url, DYNAMODB.config())
    sent: list[str] = []
    client.meta.events.register("before-send", lambda **_: sent.append("attempt"))
    store = DynamoFeatureStore(client, table)
    proxy.set("up")
    assert store.get_many(["customer#nobody"]) == {}  # the path works while the store answers
    proxy.set("frozen")
    sent.clear()
    try:
        outcome, elapsed = _within(HARD_STOP_S, lambda: store.get_many(["customer#nobody"]))
    finally:
        proxy.set("up")
    assert isinstance(outcome, BotoCoreError), outcome
    assert len(sent) == DYNAMODB.max_attempts  # the first attempt included
    assert DYNAMODB.max_attempts * DYNAMODB.read_timeout_s <= elapsed <= DYNAMODB.worst_case_s + 1.0


def test_the_budget_refuses_an_attempt_that_cannot_end_before_the_deadline(frozen_store) -> None:
    proxy, table = frozen_store
    clock = [100.0]
    budget = RequestBudget(clock=lambda: clock[0])
    client = budget.attach(_client(proxy.url, DYNAMODB.config()))
    store = DynamoFeatureStore(client, table)
    proxy.set("frozen")
    try:
        budget.start(DYNAMODB.attempt_s - 0.1)  # less than one attempt's timeouts
        outcome, _ = _within(HARD_STOP_S, lambda: store.get_many(["customer#nobody"]))
        assert isinstance(outcome, BudgetExhausted) and "dynamodb" in str(outcome)
        budget.start(10 * DYNAMODB.worst_case_s)  # enough for every attempt: the timeouts end it
        outcome, _ = _within(HARD_STOP_S, lambda: store.get_many(["customer#nobody"]))
        assert isinstance(outcome, BotoCoreError) and not isinstance(outcome, BudgetExhausted)
    finally:
        proxy.set("up")


def test_the_proxy_kills_and_revives_the_store(frozen_store) -> None:
    proxy, table = frozen_store
    store = DynamoFeatureStore(_client(proxy.url, DYNAMODB.config()), table)
    proxy.set("down")
    try:
        outcome, _ = _within(HARD_STOP_S, lambda: store.get_many(["customer#nobody"]))
        assert isinstance(outcome, BotoCoreError)
    finally:
        proxy.set("up")
    assert store.get_many(["customer#nobody"]) == {}
