"""The non-API functions' AWS clients are bounded (returnguard.aws.clients.bounded_client): each client a
function builds at load carries its kind's connect/read timeouts and total attempts, not boto3's
defaults (60 s reads, legacy retries); and the stream function, facing an unreachable table, fails the
batch after its bounded attempts instead of waiting out its timeout."""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest

from local.api_server import LambdaContext
from local.stack import free_port
from returnguard.aws.clients import CONSOLE, CONTROL, DAILY, STREAM, CallBounds
from returnguard.events import envelope

ROOT = Path(__file__).resolve().parents[2]
COMMON = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "POWERTOOLS_SERVICE_NAME": "returnguard-bounds",
    "POWERTOOLS_METRICS_NAMESPACE": "ReturnGuard",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "ERROR",
}
STREAM_ENV = {
    "RG_FEATURES_TABLE": "features",
    "RG_IDEMPOTENCY_TABLE": "idempotency",
    "RG_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/000000000000/dlq",
    "RG_LAKE_BUCKET": "lake",
}
TABLES = {"RG_DECISIONS_TABLE": "decisions", "RG_AUDIT_TABLE": "audit", "RG_FLAGGED_TABLE": "flagged"}
VECTORS = {"RG_VECTOR_BUCKET": "vectors", "RG_VECTOR_INDEX": "cases", "RG_REASONS_INDEX": "reasons"}
# function: (its kind's bounds, its function timeout in s, its environment)
FUNCTIONS: dict[str, tuple[CallBounds, float, dict[str, str]]] = {
    "stream": (STREAM, 60, STREAM_ENV),
    "archive": (STREAM, 120, {"RG_LAKE_BUCKET": "lake", **VECTORS}),
    "console": (
        CONSOLE,
        29,
        {
            **TABLES,
            **VECTORS,
            "RG_LAKE_BUCKET": "lake",
            "RG_COGNITO_ISSUER": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_test",
            "RG_CONSOLE_CLIENT_ID": "client",
            "RG_COGNITO_DOMAIN_URL": "https://auth.example.test",
            "RG_CONSOLE_URL": "https://console.example.test/prod",
        },
    ),
    "gate": (CONTROL, 120, {"RG_GATE_BOUNDS": "{}", "RG_LAKE_BUCKET": "lake"}),
    "promote": (CONTROL, 60, {"RG_ENDPOINT_NAME": "endpoint", "RG_LAKE_BUCKET": "lake"}),
    "retraining_cleanup": (CONTROL, 300, {}),
    "drift": (
        DAILY,
        300,
        {"RG_ENDPOINT_NAME": "endpoint", "RG_LAKE_BUCKET": "lake", "RG_DRIFT_SOURCE": "audit"},
    ),
    "console_summary": (DAILY, 120, {**TABLES, "RG_SUMMARY_TOPIC_ARN": "arn:aws:sns:us-east-1:0:t"}),
    "console_clusters": (DAILY, 600, {"RG_LAKE_BUCKET": "lake", **VECTORS}),
    "blocklist_sync": (
        DAILY,
        300,
        {"RG_FEATURES_TABLE": "features", "RG_LAKE_BUCKET": "lake", "RG_DB_SECRET_ARN": "arn:secret"},
    ),
}
# the daily summary's Bedrock writer: one attempt within the summary's own budget (narrative.bedrock_config)
WRITERS = {"console": 10.0, "console_summary": 20.0}


def load(name: str, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> tuple[ModuleType, list[Any]]:
    """The function's handler module, loaded as Lambda loads it, and every boto3 client it built."""
    for key, value in {**COMMON, **env}.items():
        monkeypatch.setenv(key, value)
    built: list[Any] = []
    real = boto3.client

    def client(*args: Any, **kwargs: Any) -> Any:
        made = real(*args, **kwargs)
        built.append(made)
        return made

    monkeypatch.setattr(boto3, "client", client)
    module_name = f"{name}_handler_bounds"
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "lambdas" / name / "handler.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, module_name, module)
    spec.loader.exec_module(module)
    monkeypatch.setattr(boto3, "client", real)
    return module, built


def bounds_of(client: Any) -> tuple[float, float, dict[str, Any]]:
    config = client.meta.config
    return config.connect_timeout, config.read_timeout, config.retries


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_every_client_a_function_builds_carries_its_kinds_bounds(name, monkeypatch):
    bounds, timeout_s, env = FUNCTIONS[name]
    _, built = load(name, monkeypatch, env)

    assert built, "the function builds its clients at load"
    expected = (bounds.connect_timeout_s, bounds.read_timeout_s, bounds.config().retries)
    writer = WRITERS.get(name)
    for client in built:
        service = client.meta.service_model.service_name
        if service == "bedrock-runtime" and bounds_of(client)[1] == writer:  # the writer, not the embedder
            assert bounds_of(client)[2] == {"total_max_attempts": 1, "mode": "standard"}
            continue
        assert bounds_of(client) == expected, service
    assert bounds.worst_case_s < timeout_s  # one call, every attempt timing out, fits the function


def test_the_kinds_are_ordered_by_patience():
    # a stream consumer fails fastest (its event source retries), daily jobs wait longest
    assert STREAM.worst_case_s < CONSOLE.worst_case_s < CONTROL.worst_case_s < DAILY.worst_case_s
    assert 2 * CONSOLE.worst_case_s < 29  # two calls that both time out still leave the console its answer


def test_an_unreachable_table_fails_the_stream_batch_after_the_bounded_attempts(monkeypatch):
    # Given the stream function whose AWS endpoints are a closed port on this machine
    closed = f"http://127.0.0.1:{free_port()}"
    handler, _ = load("stream", monkeypatch, {**STREAM_ENV, "AWS_ENDPOINT_URL": closed})
    attempts: Counter[str] = Counter()
    handler.applier._db.meta.events.register(
        "before-send", lambda request, **_: attempts.update([request.headers.get("X-Amz-Target", b"")])
    )
    payload = {"order_id": "O1", "customer_id": "C1", "product_id": "P1", "seller_id": "S1", "region": "KA"}
    payload |= {"category": "fashion", "amount": 10.0}
    payload |= {"currency": "INR", "payment_method": "upi", "delivery_address": "1 MG Road"}
    data = json.dumps(envelope("order", "ord-O1", 1_735_689_600_000, payload)).encode()
    event = {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": "C1",
                    "sequenceNumber": "1000001",
                    "data": base64.b64encode(data).decode(),
                    "approximateArrivalTimestamp": 1.7e9,
                },
                "eventSource": "aws:kinesis",
                "eventID": "shardId-000000000000:1000001",
                "eventName": "aws:kinesis:record",
                "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:kinesis:us-east-1:000000000000:stream/events",
            }
        ]
    }
    answer: list[Any] = []

    # When a batch arrives (in a thread: an unbounded client would hang the test, not the suite)
    started = time.monotonic()
    worker = threading.Thread(
        target=lambda: answer.append(handler.lambda_handler(event, LambdaContext())), daemon=True
    )
    worker.start()
    worker.join(30)
    elapsed = time.monotonic() - started

    # Then the batch fails (Kinesis redelivers it) after the stream kind's attempts, within its bound
    assert answer == [{"batchItemFailures": [{"itemIdentifier": "1000001"}]}]
    assert attempts and set(attempts.values()) == {STREAM.max_attempts}, attempts
    assert elapsed <= STREAM.worst_case_s + 1.0
