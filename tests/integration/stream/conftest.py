"""The stream handler on moto, with a stand-in for the Kinesis event source mapping."""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.api_server import LambdaContext
from local.stack import create_table
from returnguard.aws.feature_store import decode_item
from returnguard.order_record import order_record_key
from returnguard.tables import FEATURES, IDEMPOTENCY

SHARD = "shardId-000000000000"


@dataclass
class Delivery:
    """What the event source mapping does: batches in sequence order; after a partial failure, the
    next batch starts at the first failed record."""

    handler: ModuleType
    batch_size: int = 25
    invocations: int = 0
    redelivered: int = 0
    responses: list[dict[str, Any]] = field(default_factory=list)

    def run(self, payloads: list[bytes], max_invocations: int = 10_000) -> None:
        position = 0
        while position < len(payloads):
            chunk = payloads[position : position + self.batch_size]
            event = {
                "Records": [
                    {
                        "kinesis": {
                            "kinesisSchemaVersion": "1.0",
                            "partitionKey": "pk",
                            "sequenceNumber": str(1_000_000 + position + i),
                            "data": base64.b64encode(data).decode(),
                            "approximateArrivalTimestamp": 1.7e9,
                        },
                        "eventSource": "aws:kinesis",
                        "eventVersion": "1.0",
                        "eventID": f"{SHARD}:{1_000_000 + position + i}",
                        "eventName": "aws:kinesis:record",
                        "awsRegion": "us-east-1",
                        "eventSourceARN": "arn:aws:kinesis:us-east-1:000000000000:stream/events",
                    }
                    for i, data in enumerate(chunk)
                ]
            }
            result = self.handler.lambda_handler(event, LambdaContext())
            self.responses.append(result)
            self.invocations += 1
            failed = [int(f["itemIdentifier"]) - 1_000_000 for f in result.get("batchItemFailures", [])]
            if failed:
                self.redelivered += position + len(chunk) - min(failed)
                position = min(failed)
            else:
                position += len(chunk)
            assert self.invocations < max_invocations, "no progress"


@pytest.fixture
def aws(monkeypatch) -> Iterator[dict[str, Any]]:
    env = {
        "AWS_DEFAULT_REGION": "us-east-1",
        "RG_FEATURES_TABLE": "features",
        "RG_IDEMPOTENCY_TABLE": "idempotency",
        "RG_LAKE_BUCKET": "lake",
        "POWERTOOLS_SERVICE_NAME": "returnguard-stream",  # not the score handler's logger
        "POWERTOOLS_METRICS_NAMESPACE": "ReturnGuard",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(dynamodb, FEATURES, "features")
        create_table(dynamodb, IDEMPOTENCY, "idempotency")
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="lake")
        sqs = boto3.client("sqs", region_name="us-east-1")
        monkeypatch.setenv("RG_DLQ_URL", sqs.create_queue(QueueName="dlq")["QueueUrl"])
        yield {"dynamodb": dynamodb, "s3": s3, "sqs": sqs}


@pytest.fixture
def stream_handler(aws) -> ModuleType:
    path = Path(__file__).resolve().parents[3] / "lambdas" / "stream" / "handler.py"
    spec = importlib.util.spec_from_file_location("stream_handler_under_test", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def stored_states(dynamodb: Any) -> dict[str, Any]:
    """Every aggregate in the features table, as plain JSON data (not the `order#` records: plain
    attributes, no state; see order_records)."""
    states: dict[str, Any] = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName="features"):
        for item in page["Items"]:
            if item["pk"]["S"].startswith(order_record_key("")):
                continue
            decoded = decode_item(item)
            states[decoded["pk"]] = decoded["state"]
    return states


def order_records(dynamodb: Any) -> dict[str, dict[str, Any]]:
    """Every `order#` record in the features table: order id -> its attributes, without key and TTL."""
    records: dict[str, dict[str, Any]] = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName="features"):
        for item in page["Items"]:
            if item["pk"]["S"].startswith(order_record_key("")):
                decoded = decode_item(item)
                order_id = decoded.pop("pk").removeprefix(order_record_key(""))
                decoded.pop("expires_at", None)
                records[order_id] = decoded
    return records


def normalized(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True))


__all__ = ["Delivery", "normalized", "order_records", "stored_states"]
