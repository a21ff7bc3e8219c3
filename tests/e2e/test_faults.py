"""Fault run against the real local stack: the API (the score handler over HTTP), the moto server and
the local inference server, each dependency behind a proxy (local/faults.py) that kills or freezes it.
Asserts what the API answers and that every answer comes within the decision budget."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from local import stack as local_stack
from local.api_server import ApiServer, seed_features, serve
from local.faults import FaultProxy
from local.inference_server import serve as serve_model
from returnguard.aws.clients import DECISION_BUDGET_S, HEALTH_BUDGET_S
from returnguard.aws.model_client import READ_TIMEOUT_S
from tests.integration.api.test_score_handler import order
from tests.unit.api.fakes import DAY, T0, customer_with_history

pytestmark = pytest.mark.slow

# The budget bounds the AWS calls; our own code (features, scoring, explanation, HTTP) adds well under
# a second on this machine, so an answer later than this means a dependency was waited on unbounded.
ANSWER_WITHIN_S = DECISION_BUDGET_S + 2.0
HEALTH_WITHIN_S = HEALTH_BUDGET_S + 2.0
HARD_STOP_S = 60  # the HTTP client gives up here: an unbounded wait fails instead of hanging the run
ABUSIVE = [f"CA{i}" for i in range(40)]  # returned 5 or 6 of their last 6 orders


@dataclasses.dataclass
class World:
    api: ApiServer
    store: FaultProxy
    model: FaultProxy
    logs: Path


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def world(trained_model, tmp_path_factory) -> Iterator[World]:
    model_dir = trained_model[0]
    config = json.loads((Path(model_dir) / "config.json").read_text())
    logs = tmp_path_factory.mktemp("fault-logs")
    stack = local_stack.start(prefix="returnguard-faults")  # moto's state is per process: own names
    model = serve_model(str(model_dir))
    store_proxy = FaultProxy("127.0.0.1", _port(stack.endpoint_url))
    model_proxy = FaultProxy("127.0.0.1", model.port)
    api = None
    try:
        histories = [
            (
                f"customer#{c}",
                customer_with_history(orders=8 + i % 5, returned=5 + i % 2, last_order_ms=T0 - DAY),
            )
            for i, c in enumerate(ABUSIVE)
        ]
        seed_features(stack, histories)
        behind_proxy = dataclasses.replace(stack, endpoint_url=store_proxy.url, _server=None)
        api = serve(
            behind_proxy,
            config,
            model_proxy.url,
            log_path=logs / "api.log",
            fallback_model=Path(model_dir) / "fallback_model.json",
        )
        yield World(api, store_proxy, model_proxy, logs)
    finally:
        if api is not None:
            api.stop()
        store_proxy.stop()
        model_proxy.stop()
        model.stop()
        stack.stop()


@pytest.fixture(autouse=True)
def dependencies_back_up(world) -> Iterator[None]:
    """Each test starts and ends with both dependencies up and the model's circuit closed."""
    yield
    world.store.set("up")
    world.model.set("up")
    world.api.handler.model.breaker.succeeded()


def health(api: ApiServer) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = requests.get(f"{api.url}/v1/health", timeout=HARD_STOP_S)
    return response, time.monotonic() - started


def timed_post(api: ApiServer, body: Any) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = requests.post(
        f"{api.url}/v1/risk-score",
        data=json.dumps(body),
        headers={"Content-Type": "application/json"},
        timeout=HARD_STOP_S,
    )
    return response, time.monotonic() - started


def test_all_up_the_health_is_ok(world) -> None:
    response, _ = health(world.api)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["dependencies"] == {"model": "ok", "store": "ok"}


@pytest.mark.parametrize("fault", ["down", "frozen"])
def test_a_dead_or_frozen_store_is_a_clean_503_within_the_budget(world, fault) -> None:
    world.store.set(fault)
    response, elapsed = timed_post(world.api, order(f"F-STORE-{fault}"))
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "unavailable" and "Traceback" not in response.text
    assert elapsed < ANSWER_WITHIN_S
    checked, checked_in = health(world.api)
    assert checked.status_code == 503 and checked_in < HEALTH_WITHIN_S
    assert checked.json()["status"] == "down" and checked.json()["dependencies"]["store"] == "down"
    # states only: no endpoint, table name or error text
    assert set(checked.json()) == {"status", "model_version", "dependencies"}
    assert set(checked.json()["dependencies"].values()) <= {"ok", "degraded", "down"}
    assert "127.0.0.1" not in checked.text and "returnguard-faults" not in checked.text
    # and the API recovers with the store
    world.store.set("up")
    again, _ = timed_post(world.api, order(f"F-STORE-{fault}-after"))
    assert again.status_code == 200, again.text


def test_with_the_model_killed_abusive_customers_are_still_not_approved(world) -> None:
    # Given the model up: what it decides for customers who returned most of their last orders
    up = [timed_post(world.api, order(f"F-UP-{c}", c)) for c in ABUSIVE]
    assert all(r.status_code == 200 and not r.json()["degraded"] for r, _ in up)
    # When the model is killed
    world.model.set("down")
    down = [timed_post(world.api, order(f"F-DOWN-{c}", c)) for c in ABUSIVE]
    # Then every order is decided by the fallback model, in time, and none of them is approved
    bodies = [r.json() for r, _ in down]
    assert all(r.status_code == 200 for r, _ in down) and all(b["degraded"] for b in bodies)
    assert max(elapsed for _, elapsed in down) < ANSWER_WITHIN_S
    assert {b["model_version"] for b in bodies} == {world.api.handler.FALLBACK.model_version}
    assert all(b["risk_score"] is not None and b["explanation"]["key_factors"] for b in bodies)
    reasons = [b["degraded_reason"] for b in bodies]
    assert reasons[0] == "model_error" and reasons[-1] == "circuit_open"  # a few errors open the circuit
    approved_up = sum(r.json()["recommended_action"] == "approve" for r, _ in up)
    approved_down = sum(b["recommended_action"] == "approve" for b in bodies)
    assert approved_up == 0 and approved_down == 0
    checked, _ = health(world.api)
    assert checked.status_code == 200 and checked.json()["status"] == "degraded"
    assert checked.json()["dependencies"] == {"model": "degraded", "store": "ok"}


def test_a_frozen_model_costs_one_timeout_then_the_circuit_answers_at_once(world) -> None:
    world.model.set("frozen")
    first, first_s = timed_post(world.api, order("F-FROZEN-1", ABUSIVE[0]))
    later = [timed_post(world.api, order(f"F-FROZEN-{i}", ABUSIVE[i])) for i in range(2, 6)]
    assert first.status_code == 200 and first.json()["degraded_reason"] == "model_timeout"
    assert READ_TIMEOUT_S <= first_s < ANSWER_WITHIN_S  # it waited for the model once
    for response, elapsed in later:
        assert response.json()["degraded_reason"] == "circuit_open"
        assert response.json()["recommended_action"] != "approve"
        assert elapsed < READ_TIMEOUT_S  # no request waited on the frozen model again
    checked, checked_in = health(world.api)
    assert checked.json()["dependencies"]["model"] == "degraded" and checked_in < READ_TIMEOUT_S


def test_after_the_cooldown_a_probe_finds_the_model_back(world) -> None:
    breaker = world.api.handler.model.breaker
    world.model.set("down")
    for i in range(3):
        timed_post(world.api, order(f"F-BACK-{i}", ABUSIVE[i]))
    assert breaker.state == "open"
    world.model.set("up")
    breaker.cooldown_s = 0.0  # as if the cool-down had passed (30 s in the function)
    try:
        response, _ = timed_post(world.api, order("F-BACK-probe", ABUSIVE[5]))
    finally:
        breaker.cooldown_s = 30.0
    assert response.status_code == 200 and not response.json()["degraded"]
    assert response.json()["degraded_reason"] is None and breaker.state == "closed"
