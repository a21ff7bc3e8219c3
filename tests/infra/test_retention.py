"""Retention on the synthesized templates: the lake's lifecycle rules, the decisions stream feeding the
archive function (TTL removals only), the archive's Glue table, and the alarms that guard it."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match, Template

from returnguard.archive import ARCHIVE_COLUMNS, TTL_IDENTITY
from stacks.layers import SDK_FOR_PANDAS_LAYERS


def rules(synth) -> dict[str, dict]:
    buckets = Template.from_stack(synth.stacks.data).find_resources(
        "AWS::S3::Bucket", {"Properties": {"LoggingConfiguration": {"LogFilePrefix": "lake/"}}}
    )
    (lake,) = buckets.values()
    return {rule["Id"]: rule for rule in lake["Properties"]["LifecycleConfiguration"]["Rules"]}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_lake_lifecycle_keeps_raw_2_years_features_1_year_models_forever(request, stage) -> None:
    by_id = rules(request.getfixturevalue(stage))
    by_prefix = {rule.get("Prefix"): rule for rule in by_id.values()}
    assert by_prefix["raw/"]["Transitions"] == [{"StorageClass": "GLACIER", "TransitionInDays": 730}]
    assert "ExpirationInDays" not in by_prefix["raw/"]
    assert by_prefix["processed/features/"]["ExpirationInDays"] == 365
    # the decisions archive and every model artifact: cheaper storage, never deleted
    for prefix, days in (("processed/predictions/", 365), ("models/artifacts/", 90)):
        assert by_prefix[prefix]["Transitions"] == [{"StorageClass": "GLACIER_IR", "TransitionInDays": days}]
        assert "ExpirationInDays" not in by_prefix[prefix]
    assert by_prefix["models/data-capture/"]["ExpirationInDays"] == 90
    # no rule without a prefix deletes current objects (only noncurrent versions are cleaned up)
    for rule in by_id.values():
        if not rule.get("Prefix"):
            assert "ExpirationInDays" not in rule and "Transitions" not in rule
    assert all(rule["Status"] == "Enabled" for rule in by_id.values())


def test_decisions_table_streams_old_images_with_its_ttl(dev) -> None:
    Template.from_stack(dev.stacks.data).has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
            "StreamSpecification": {"StreamViewType": "OLD_IMAGE"},
            "GlobalSecondaryIndexes": Match.array_with([Match.object_like({"IndexName": "by_customer"})]),
        },
    )


def test_archive_function_gets_only_ttl_removals_and_retries_until_the_stream_drops_them(dev) -> None:
    retention = Template.from_stack(dev.stacks.retention)
    mappings = retention.find_resources("AWS::Lambda::EventSourceMapping")
    (mapping,) = mappings.values()
    properties = mapping["Properties"]
    assert properties["StartingPosition"] == "TRIM_HORIZON"
    assert properties["MaximumRetryAttempts"] == -1
    assert properties["BisectBatchOnFunctionError"] is False
    assert "ArchiveDeadLetters" in str(properties["DestinationConfig"]["OnFailure"]["Destination"])
    (pattern,) = properties["FilterCriteria"]["Filters"]
    assert json.loads(pattern["Pattern"]) == {
        "eventName": ["REMOVE"],
        "userIdentity": {name: [value] for name, value in TTL_IDENTITY.items()},
    }
    # pyarrow from the AWS SDK for pandas layer of the stack's region, beside Powertools
    function = next(
        f
        for f in retention.find_resources("AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] == "handler.lambda_handler"
    )
    assert function["Properties"]["Environment"]["Variables"]["RG_LAKE_BUCKET"]
    assert len(function["Properties"]["Layers"]) == 2
    mapping_table = retention.to_json()["Mappings"]["SdkForPandasLayer"]
    assert mapping_table["ap-south-1"]["arn"] == SDK_FOR_PANDAS_LAYERS["ap-south-1"]
    assert all(":layer:AWSSDKPandas-Python312:" in row["arn"] for row in mapping_table.values())


def test_archive_may_write_only_its_prefix(dev) -> None:
    policies = Template.from_stack(dev.stacks.retention).find_resources("AWS::IAM::Policy")
    statements = [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]
    puts = [s for s in statements if any(str(a).startswith("s3:PutObject") for a in _list(s["Action"]))]
    assert puts
    for statement in puts:
        assert "processed/predictions/decisions/*" in str(statement["Resource"])
    assert not any("s3:GetObject" in str(s["Action"]) or "s3:Delete" in str(s["Action"]) for s in statements)


def test_archive_may_delete_only_from_the_consoles_similar_cases_index(dev) -> None:
    retention = Template.from_stack(dev.stacks.retention)
    function = next(
        f
        for f in retention.find_resources("AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] == "handler.lambda_handler"
    )
    variables = function["Properties"]["Environment"]["Variables"]
    bucket = dev.stacks.console.vector_bucket.vector_bucket_name
    assert (variables["RG_VECTOR_BUCKET"], variables["RG_VECTOR_INDEX"]) == (bucket, "cases")
    policies = retention.find_resources("AWS::IAM::Policy")
    statements = [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]
    vectors = [s for s in statements if "s3vectors" in str(s["Action"])]
    assert [s["Action"] for s in vectors] == ["s3vectors:DeleteVectors"]
    assert f":bucket/{bucket}/index/cases" in json.dumps(vectors[0]["Resource"])


def test_archive_is_an_athena_table_partitioned_by_day_with_projection(dev) -> None:
    retention = Template.from_stack(dev.stacks.retention)
    (table,) = retention.find_resources("AWS::Glue::Table").values()
    table_input = table["Properties"]["TableInput"]
    assert table_input["Name"] == "decisions_archive"
    assert table_input["PartitionKeys"] == [{"Name": "dt", "Type": "string"}]
    assert [(c["Name"], c["Type"]) for c in table_input["StorageDescriptor"]["Columns"]] == list(
        ARCHIVE_COLUMNS
    )
    assert "ParquetHiveSerDe" in table_input["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"]
    parameters = table_input["Parameters"]
    assert parameters["projection.enabled"] == "true"
    assert parameters["projection.dt.type"] == "date" and parameters["projection.dt.format"] == "yyyy-MM-dd"
    assert "processed/predictions/decisions/dt=${dt}/" in str(parameters["storage.location.template"])
    # the processed/ crawler leaves the archive to this table
    Template.from_stack(dev.stacks.etl).has_resource_properties(
        "AWS::Glue::Crawler",
        {
            "TablePrefix": "processed_",
            "Targets": {"S3Targets": [Match.object_like({"Exclusions": ["predictions/**"]})]},
        },
    )


def test_archive_lag_and_failed_batches_alarm(dev) -> None:
    monitoring = Template.from_stack(dev.stacks.monitoring)
    monitoring.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {"MetricName": "IteratorAge", "Threshold": 3_600_000, "AlarmActions": Match.any_value()},
    )
    monitoring.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "AlarmDescription": Match.string_like_regexp("expired decisions|left the stream"),
        },
    )


def _list(value) -> list:
    return value if isinstance(value, list) else [value]
