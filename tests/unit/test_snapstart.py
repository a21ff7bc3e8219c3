"""SnapStart hooks: before the snapshot no pooled connection survives, after each restore `random` is
reseeded, and outside Lambda's runtime nothing is registered."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


SCORE_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "RG_FEATURES_TABLE": "features",
    "RG_DECISIONS_TABLE": "decisions",
    "RG_AUDIT_TABLE": "audit",
    "RG_ENDPOINT_NAME": "returnguard-dev-scoring",
    "RG_MODEL_CONFIG": '{"model_version":"v1","thresholds":{"medium":0.3,"high":0.6,"critical":0.9}}',
    "POWERTOOLS_TRACE_DISABLED": "true",
}


def load_score_handler(monkeypatch, runtime: FakeRuntime, **env: str) -> types.ModuleType:
    """Import lambdas/score/handler.py as Lambda's init would, with `runtime` as snapshot_restore_py."""
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", runtime)
    for key, value in {**SCORE_ENV, **env}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("RG_INFERENCE_URL", raising=False)
    path = Path(__file__).resolve().parents[2] / "lambdas" / "score" / "handler.py"
    spec = importlib.util.spec_from_file_location("score_handler_snapstart", path)
    assert spec and spec.loader
    handler = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, handler)
    spec.loader.exec_module(handler)
    return handler


def test_score_handler_registers_the_hooks_with_its_clients(monkeypatch):
    runtime = FakeRuntime()
    handler = load_score_handler(
        monkeypatch, runtime, RG_DECISION_ID_SECRET="test-only-decision-id-secret-32-chars-long"
    )

    assert len(runtime.before) == 1 and len(runtime.after) == 1
    services = sorted(c.meta.service_model.service_name for c in handler.budget.clients)
    assert services == ["dynamodb", "sagemaker-runtime"]
    for client in handler.budget.clients:
        client._endpoint.http_session._manager.connection_from_url(client.meta.endpoint_url)
    runtime.before[0]()
    assert [pooled(c) for c in handler.budget.clients] == [0, 0]


class _SecretsManager(BaseHTTPRequestHandler):
    """GetSecretValue over real HTTP/1.1 keep-alive, so the client pools the connection as in Lambda."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"Name": "key", "SecretString": "s" * 40}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_no_client_of_the_score_handlers_init_keeps_a_connection_into_the_snapshot(monkeypatch):
    # Given the decision-id key read from Secrets Manager at init, over a real connection
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SecretsManager)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    created: list[Any] = []
    real_client = boto3.client

    def recording_client(*args: Any, **kwargs: Any) -> Any:
        created.append(real_client(*args, **kwargs))
        return created[-1]

    monkeypatch.setattr(boto3, "client", recording_client)
    runtime = FakeRuntime()
    try:
        handler = load_score_handler(
            monkeypatch,
            runtime,
            RG_DECISION_ID_SECRET_ARN="arn:aws:secretsmanager:us-east-1:123456789012:secret:key-AbCdEf",
            AWS_ENDPOINT_URL_SECRETS_MANAGER=f"http://127.0.0.1:{server.server_address[1]}",
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
        )
    finally:
        server.shutdown()
        server.server_close()
    assert handler.DECISION_ID_SECRET == b"s" * 40
    (secrets,) = [c for c in created if c.meta.service_model.service_name == "secretsmanager"]

    # When Lambda takes the snapshot
    runtime.before[0]()

    # Then no client created during init holds a pooled connection (the secret's was closed after its read)
    assert [(c.meta.service_model.service_name, pooled(c)) for c in created] == [
        (c.meta.service_model.service_name, 0) for c in created
    ]
    assert secrets not in handler.budget.clients


@pytest.fixture(autouse=True)
def _keep_random_state():
    state = random.getstate()
    yield
    random.setstate(state)
