"""SnapStart hooks: before the snapshot no pooled connection survives, after each restore `random` is
reseeded, and outside Lambda's runtime nothing is registered."""

from __future__ import annotations

import importlib.util
import random
import sys
import types
from pathlib import Path
from typing import Any

import boto3
import pytest

from returnguard.aws import snapstart
from returnguard.aws.clients import RequestBudget


class FakeRuntime(types.ModuleType):
    """Stands in for `snapshot_restore_py`, which only Lambda's Python 3.12+ runtimes ship."""

    def __init__(self) -> None:
        super().__init__("snapshot_restore_py")
        self.before: list[Any] = []
        self.after: list[Any] = []

    def register_before_snapshot(self, hook: Any) -> None:
        self.before.append(hook)

    def register_after_restore(self, hook: Any) -> None:
        self.after.append(hook)


def pooled(client: Any) -> int:
    """How many connection pools the client holds (a pool is created for a host on first use)."""
    return len(client._endpoint.http_session._manager.pools)


def test_before_snapshot_closes_every_attached_clients_pools():
    budget = RequestBudget()
    clients = [
        budget.attach(boto3.client("dynamodb", region_name="us-east-1")),
        budget.attach(boto3.client("sagemaker-runtime", region_name="us-east-1")),
    ]
    runtime = FakeRuntime()
    for client in clients:  # as a warm-up request during init would leave them
        client._endpoint.http_session._manager.connection_from_url(client.meta.endpoint_url)
    assert [pooled(c) for c in clients] == [1, 1]

    assert snapstart.register(lambda: budget.clients, hooks=runtime)
    (before,) = runtime.before
    before()

    assert [pooled(c) for c in clients] == [0, 0]
    clients[0]._endpoint.http_session._manager.connection_from_url(clients[0].meta.endpoint_url)
    assert pooled(clients[0]) == 1  # still usable: a restored copy opens its own connection


def test_after_restore_each_copy_draws_its_own_random_numbers():
    runtime = FakeRuntime()
    snapstart.register(list, hooks=runtime)
    (after,) = runtime.after
    random.seed(1234)  # the state every copy would restore from the snapshot
    snapshot_state = random.getstate()
    without_hook = random.random()

    random.setstate(snapshot_state)
    after()
    first_copy = random.random()
    random.setstate(snapshot_state)
    after()
    second_copy = random.random()

    assert len({without_hook, first_copy, second_copy}) == 3


def test_outside_lambdas_runtime_nothing_is_registered(monkeypatch):
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # import fails as it does here
    assert snapstart.register(list) is False


def test_score_handler_registers_the_hooks_with_its_clients(monkeypatch):
    runtime = FakeRuntime()
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", runtime)
    env = {
        "AWS_DEFAULT_REGION": "us-east-1",
        "RG_FEATURES_TABLE": "features",
        "RG_DECISIONS_TABLE": "decisions",
        "RG_AUDIT_TABLE": "audit",
        "RG_ENDPOINT_NAME": "returnguard-dev-scoring",
        "RG_MODEL_CONFIG": '{"model_version":"v1","thresholds":{"medium":0.3,"high":0.6,"critical":0.9}}',
        "POWERTOOLS_TRACE_DISABLED": "true",
        "RG_DECISION_ID_SECRET": "test-only-decision-id-secret-32-chars-long",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("RG_INFERENCE_URL", raising=False)
    path = Path(__file__).resolve().parents[2] / "lambdas" / "score" / "handler.py"
    spec = importlib.util.spec_from_file_location("score_handler_snapstart", path)
    assert spec and spec.loader
    handler = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, handler)
    spec.loader.exec_module(handler)

    assert len(runtime.before) == 1 and len(runtime.after) == 1
    services = sorted(c.meta.service_model.service_name for c in handler.budget.clients)
    assert services == ["dynamodb", "sagemaker-runtime"]
    for client in handler.budget.clients:
        client._endpoint.http_session._manager.connection_from_url(client.meta.endpoint_url)
    runtime.before[0]()
    assert [pooled(c) for c in handler.budget.clients] == [0, 0]


@pytest.fixture(autouse=True)
def _keep_random_state():
    state = random.getstate()
    yield
    random.setstate(state)
