"""Retention: a decision the TTL removes from DynamoDB reaches the lake (processed/predictions/decisions/, Parquet).

moto runs DynamoDB Streams but not the TTL sweeper, so the removal is a DeleteItem and the record gets the
`userIdentity` AWS puts on TTL deletions; everything else (the stored item, its stream record with the old
image, the handler, S3) is the real path.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from local.api_server import LambdaContext
from local.stack import create_table
from returnguard.archive import ARCHIVE_COLUMNS, TTL_IDENTITY
from returnguard.aws.archive import live_decisions
from returnguard.aws.decisions import TTL_SECONDS, DecisionStore, body_hash
from returnguard.aws.feature_store import InMemoryFeatureStore
from returnguard.policy import PolicyConfig
from returnguard.scoring import decide
from returnguard.tables import AUDIT, DECISIONS
from tests.integration.api.test_decisions import make_request
from tests.unit.api.fakes import FakeModel

DECIDED_AT = datetime(2026, 3, 1, 23, 30, tzinfo=timezone.utc)
LAKE = "lake"
VECTORS = "case-vectors"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RG_LAKE_BUCKET", LAKE)
    monkeypatch.setenv("RG_VECTOR_BUCKET", VECTORS)  # the console's similar-cases index
    monkeypatch.setenv("RG_VECTOR_INDEX", "cases")
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(dynamodb, DECISIONS, "decisions")
        create_table(dynamodb, AUDIT, "audit")
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=LAKE)
        path = ROOT / "lambdas" / "archive" / "handler.py"
        spec = importlib.util.spec_from_file_location("archive_handler_under_test", path)
        assert spec and spec.loader
        handler = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = handler
        spec.loader.exec_module(handler)
        yield dynamodb, s3, handler
        sys.modules.pop(spec.name, None)


def store_decision(dynamodb: Any) -> dict[str, Any]:
    request = make_request()
    decision = decide(request, InMemoryFeatureStore(), FakeModel(0.4), PolicyConfig(), DECIDED_AT)
    saved, _ = DecisionStore(dynamodb, "decisions", "audit").save(
        decision.response,
        customer_id="C9",
        request_hash=body_hash(request),
        features=decision.vector,
        now=DECIDED_AT,
    )
    return saved


def stream_records(dynamodb: Any) -> list[dict[str, Any]]:
    """Every record of the decisions table's stream, in order, shaped as Lambda receives them."""
    # botocore sends DescribeStream to an account-based host (<account>.streams-ddb...) moto does not serve
    streams = boto3.client(
        "dynamodbstreams",
        region_name="us-east-1",
        endpoint_url="https://streams.dynamodb.us-east-1.amazonaws.com",
    )
    arn = dynamodb.describe_table(TableName="decisions")["Table"]["LatestStreamArn"]
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records += streams.get_records(ShardIterator=iterator)["Records"]
    for record in records:
        created = record["dynamodb"].get("ApproximateCreationDateTime")
        if isinstance(created, datetime):  # boto3 parses it; Lambda's event carries epoch seconds
            record["dynamodb"]["ApproximateCreationDateTime"] = created.timestamp()
    return json.loads(json.dumps(records, default=str))


def archived_rows(s3: Any) -> dict[str, list[dict[str, Any]]]:
    listing = s3.list_objects_v2(Bucket=LAKE, Prefix="processed/predictions/decisions/").get("Contents", [])
    return {
        o["Key"]: pq.read_table(
            io.BytesIO(s3.get_object(Bucket=LAKE, Key=o["Key"])["Body"].read())
        ).to_pylist()
        for o in listing
    }


def test_a_decision_the_ttl_removes_is_archived_as_parquet_under_its_decision_day(aws) -> None:
    dynamodb, s3, handler = aws
    # Given a decision as the score function stores it, and the TTL deleting it 90 days later
    saved = store_decision(dynamodb)
    item = dynamodb.get_item(TableName="decisions", Key={"decision_id": {"S": saved["decision_id"]}})["Item"]
    assert int(item["expires_at"]["N"]) == int(DECIDED_AT.timestamp()) + TTL_SECONDS
    dynamodb.delete_item(TableName="decisions", Key={"decision_id": {"S": saved["decision_id"]}})
    records = stream_records(dynamodb)
    removal = [r for r in records if r["eventName"] == "REMOVE"]
    assert len(removal) == 1 and "OldImage" in removal[0]["dynamodb"]
    removal[0]["userIdentity"] = dict(TTL_IDENTITY)

    # When the archive function gets the stream batch (the INSERT too: the event filter would drop it)
    result = handler.lambda_handler({"Records": records}, LambdaContext())

    # Then the decision is in the lake, under the day it was decided, with every column
    assert result["archived"] == 1 and result["skipped"] == len(records) - 1
    objects = archived_rows(s3)
    assert list(objects) == [
        f"processed/predictions/decisions/dt=2026-03-01/{removal[0]['dynamodb']['SequenceNumber']}.parquet"
    ]
    (row,) = next(iter(objects.values()))
    assert list(row) == [name for name, _ in ARCHIVE_COLUMNS]
    assert row["decision_id"] == saved["decision_id"]
    assert row["order_id"] == "ORD9" and row["customer_id"] == "C9"
    assert row["risk_score"] == pytest.approx(saved["risk_score"])
    assert row["recommended_action"] == saved["recommended_action"] == "otp_verification"
    assert row["model_version"] == saved["model_version"]
    assert row["expires_at"] == int(DECIDED_AT.timestamp()) + TTL_SECONDS
    assert json.loads(row["response"]) == saved


def test_a_live_decision_reads_as_the_row_it_is_archived_as(aws) -> None:
    # The comparison report reads decisions still in the table (younger than the TTL) beside the
    # archive: a decision must read the same in both, but for when it was archived.
    dynamodb, s3, handler = aws
    saved = store_decision(dynamodb)
    (live,) = live_decisions(dynamodb, "decisions")
    dynamodb.delete_item(TableName="decisions", Key={"decision_id": {"S": saved["decision_id"]}})
    records = stream_records(dynamodb)
    for record in records:
        record["userIdentity"] = dict(TTL_IDENTITY)
    handler.lambda_handler({"Records": records}, LambdaContext())

    ((archived,),) = archived_rows(s3).values()
    assert live["archived_at"] is None and archived["archived_at"]
    assert {**live, "archived_at": archived["archived_at"]} == archived
    assert live_decisions(dynamodb, "decisions") == []


def test_a_retried_batch_replaces_its_object_and_an_application_delete_is_not_archived(aws) -> None:
    dynamodb, s3, handler = aws
    saved = store_decision(dynamodb)
    dynamodb.delete_item(TableName="decisions", Key={"decision_id": {"S": saved["decision_id"]}})
    records = stream_records(dynamodb)

    # An application's delete (the score function taking back a decision whose audit write failed)
    assert handler.lambda_handler({"Records": records}, LambdaContext())["archived"] == 0
    assert archived_rows(s3) == {}

    # The same removal by the TTL, delivered twice (a retried batch): one object, one row
    for record in records:
        if record["eventName"] == "REMOVE":
            record["userIdentity"] = dict(TTL_IDENTITY)
    handler.lambda_handler({"Records": records}, LambdaContext())
    handler.lambda_handler({"Records": records}, LambdaContext())
    objects = archived_rows(s3)
    assert [len(rows) for rows in objects.values()] == [1]


def test_a_removal_without_the_old_image_fails_the_batch_instead_of_losing_the_decision(aws) -> None:
    dynamodb, s3, handler = aws
    record = {
        "eventID": "1",
        "eventName": "REMOVE",
        "userIdentity": dict(TTL_IDENTITY),
        "dynamodb": {"Keys": {"decision_id": {"S": "d1"}}, "SequenceNumber": "100"},
    }
    with pytest.raises(ValueError, match="OldImage"):
        handler.lambda_handler({"Records": [record]}, LambdaContext())
    assert archived_rows(s3) == {}


def decide_by_hand(dynamodb: Any, decision_id: str) -> None:
    """A verdict as the console stores it on the decision (returnguard/aws/reviews.py)."""
    dynamodb.update_item(
        TableName="decisions",
        Key={"decision_id": {"S": decision_id}},
        UpdateExpression="SET review_status = :v, reviewed_at = :at, review_queue = :v",
        ExpressionAttributeValues={":v": {"S": "confirmed_abuse"}, ":at": {"S": "2026-03-02T10:00:00+00:00"}},
    )


def vector_index(keys: list[str]) -> Any:
    vectors = boto3.client("s3vectors", region_name="us-east-1")
    vectors.create_vector_bucket(vectorBucketName=VECTORS)
    vectors.create_index(
        vectorBucketName=VECTORS, indexName="cases", dataType="float32", dimension=4, distanceMetric="cosine"
    )
    vectors.put_vectors(
        vectorBucketName=VECTORS,
        indexName="cases",
        vectors=[{"key": key, "data": {"float32": [0.5] * 4}} for key in keys],
    )
    return vectors


def indexed(vectors: Any) -> set[str]:
    listing = vectors.list_vectors(vectorBucketName=VECTORS, indexName="cases")
    return {v["key"] for v in listing["vectors"]}


def test_a_decided_case_the_ttl_removes_leaves_the_similar_cases_index(aws) -> None:
    dynamodb, s3, handler = aws
    # Given a decided case in the similar-cases index, beside a decided case that is still in the table
    saved = store_decision(dynamodb)
    decide_by_hand(dynamodb, saved["decision_id"])
    vectors = vector_index([saved["decision_id"], "still-in-the-table"])
    dynamodb.delete_item(TableName="decisions", Key={"decision_id": {"S": saved["decision_id"]}})
    records = stream_records(dynamodb)
    removals = [r for r in records if r["eventName"] == "REMOVE"]
    assert "review_status" in removals[0]["dynamodb"]["OldImage"]

    # An application's delete leaves the index alone
    result = handler.lambda_handler({"Records": records}, LambdaContext())
    assert result["similar_cases_forgotten"] == 0 and indexed(vectors) == {
        saved["decision_id"],
        "still-in-the-table",
    }

    # When the TTL removes it: archived, and its vector is gone; the other stays
    removals[0]["userIdentity"] = dict(TTL_IDENTITY)
    result = handler.lambda_handler({"Records": records}, LambdaContext())
    assert result["archived"] == 1
    assert (result["similar_cases_forgotten"], result["similar_cases_not_forgotten"]) == (1, 0)
    assert indexed(vectors) == {"still-in-the-table"}


def test_an_index_that_fails_leaves_the_archive_written_and_the_batch_done(aws) -> None:
    dynamodb, s3, handler = aws
    saved = store_decision(dynamodb)
    decide_by_hand(dynamodb, saved["decision_id"])
    dynamodb.delete_item(TableName="decisions", Key={"decision_id": {"S": saved["decision_id"]}})
    records = stream_records(dynamodb)
    for record in records:
        record["userIdentity"] = dict(TTL_IDENTITY)

    # no vector bucket at all: DeleteVectors fails
    result = handler.lambda_handler({"Records": records}, LambdaContext())

    assert result["archived"] == 1 and [len(rows) for rows in archived_rows(s3).values()] == [1]
    assert (result["similar_cases_forgotten"], result["similar_cases_not_forgotten"]) == (0, 1)
