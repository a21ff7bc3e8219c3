"""The batch lane's AWS clients are bounded (issue 12): the Lambda's and the Glue job's S3 and DynamoDB
clients carry connect/read timeouts and a total attempt count, not boto3's defaults (60 s reads and
legacy retries), so a hung call fails its step (the state machine releases the claim and alerts)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from returnguard.aws import batch as batch_store
from returnguard.aws.clients import BATCH_DYNAMODB, BATCH_S3

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENT = {
    "RG_LAKE_BUCKET": "lake",
    "RG_FLAGGED_TABLE": "flagged",
    "RG_IDEMPOTENCY_TABLE": "idempotency",
    "RG_MODEL_PREFIX": "models/payments/current/",
    "RG_SMALL_FILE_BYTES": "16777216",
    "RG_CLAIM_LEASE_S": "10800",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def assert_bounded(store) -> None:
    for client, bounds in ((store.s3, BATCH_S3), (store.dynamodb, BATCH_DYNAMODB)):
        config = client.meta.config
        assert (config.connect_timeout, config.read_timeout) == (
            bounds.connect_timeout_s,
            bounds.read_timeout_s,
        )
        assert config.retries == {"total_max_attempts": bounds.max_attempts, "mode": "standard"}
    assert BATCH_S3.worst_case_s < 15 * 60  # one call, every attempt timing out, fits the function's timeout


def test_the_batch_functions_clients_are_bounded(monkeypatch) -> None:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location(
        "batch_file_bounds", ROOT / "lambdas" / "batch_file" / "handler.py"
    )
    assert spec and spec.loader
    handler = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "batch_file_bounds", handler)
    spec.loader.exec_module(handler)

    assert_bounded(handler.store)


def test_the_glue_jobs_clients_are_bounded(monkeypatch) -> None:
    from glue_jobs import batch_score

    built, original = [], batch_store.bounded_store

    def bounded_store(**arguments):
        built.append(original(**arguments))
        raise RuntimeError("stop before any call")

    monkeypatch.setattr(batch_store, "bounded_store", bounded_store)
    arguments = {f"--{name}": "x" for name in batch_score.ARGUMENTS} | {"--region": "us-east-1"}
    with pytest.raises(RuntimeError, match="stop before any call"):
        batch_score.run_job(arguments)
    (store,) = built
    assert_bounded(store)
    assert store.s3.meta.region_name == "us-east-1"
