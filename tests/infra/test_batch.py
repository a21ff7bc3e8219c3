"""The batch stack (seed 003) as synthesized: the upload rule, the lake's EventBridge notifications, the
predictions table Athena reads, the function's layers and scorer, the Glue job, per-stage removal."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Template

from returnguard.batch import INCOMING_PREFIX, PREDICTION_COLUMNS, PREDICTIONS_PREFIX
from stacks.batch import AWS_SDK_PANDAS_VERSION, GLUE_XGBOOST


def template(synth, name: str = "batch") -> Template:
    return Template.from_stack(getattr(synth.stacks, name))


def one(synth, type_: str, name: str = "batch") -> dict:
    (found,) = template(synth, name).find_resources(type_).values()
    return found["Properties"]


def test_an_upload_under_incoming_batch_starts_the_state_machine(dev):
    rule = one(dev, "AWS::Events::Rule")
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["object"]["key"] == [{"prefix": INCOMING_PREFIX}]
    (target,) = rule["Targets"]
    assert "BatchScoring" in target["Arn"]["Ref"] and "DeadLetterConfig" in target
    lakes = [
        b["Properties"]
        for b in template(dev, "data").find_resources("AWS::S3::Bucket").values()
        if "NotificationConfiguration" in b["Properties"]
    ]
    assert [b["NotificationConfiguration"] for b in lakes] == [
        {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    ]
    # the bucket's own property, not CDK's notifications custom resource (a Lambda that leaves a log group)
    assert not template(dev, "data").find_resources("Custom::S3BucketNotifications")


def test_predictions_table_reads_what_the_engine_writes(dev):
    table = one(dev, "AWS::Glue::Table")["TableInput"]
    descriptor = table["StorageDescriptor"]
    assert [(c["Name"], c["Type"]) for c in descriptor["Columns"]] == list(PREDICTION_COLUMNS)
    assert descriptor["Location"]["Fn::Join"][1][-1].endswith(f"/{PREDICTIONS_PREFIX}")
    assert "parquet" in descriptor["SerdeInfo"]["SerializationLibrary"].lower()


def test_the_function_scores_without_xgboost_on_the_pandas_layer(dev):
    (function,) = [
        f["Properties"]
        for f in template(dev).find_resources("AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "handler.lambda_handler"
    ]
    assert function["Environment"]["Variables"]["RG_SCORER"] == "trees"
    layers = [str(layer) for layer in function["Layers"]]
    assert any(f"aws-sdk-pandas/{AWS_SDK_PANDAS_VERSION}/" in layer for layer in layers)
    assert function["Timeout"] == 900 and function["MemorySize"] == 4096


def test_the_glue_job_installs_xgboost_and_ships_the_engine(dev):
    job = one(dev, "AWS::Glue::Job")
    assert job["GlueVersion"] == "5.0"
    assert job["DefaultArguments"]["--additional-python-modules"] == GLUE_XGBOOST
    assert job["DefaultArguments"]["--extra-py-files"]["Fn::Sub"].endswith(".zip")
    assert "SecurityConfiguration" in job


@pytest.mark.parametrize(("stage", "policy"), [("dev", "Delete"), ("prod", "Retain")])
def test_batch_log_groups_follow_the_stage(request, stage, policy):
    groups = template(request.getfixturevalue(stage)).find_resources("AWS::Logs::LogGroup")
    assert groups and {g["DeletionPolicy"] for g in groups.values()} == {policy}


def test_prod_alerts_reach_the_alert_email(prod):
    subscriptions = template(prod).find_resources("AWS::SNS::Subscription")
    assert [s["Properties"]["Protocol"] for s in subscriptions.values()] == ["email"]
    assert "KmsMasterKeyId" in one(prod, "AWS::SNS::Topic")


def test_failed_and_timed_out_batch_executions_alarm_to_the_alerts_topic(dev):
    # Given the batch state machine and the monitoring stack's alerts topic
    (machine_id,) = template(dev).find_resources("AWS::StepFunctions::StateMachine")
    (topic_id,) = template(dev, "monitoring").find_resources("AWS::SNS::Topic")
    alarms = [
        a["Properties"] for a in template(dev, "monitoring").find_resources("AWS::CloudWatch::Alarm").values()
    ]
    on_batch = {a["MetricName"]: a for a in alarms if a.get("Namespace") == "AWS/States"}
    # Then failed and timed-out executions of that machine (one sum per 5 minutes) each page the topic
    assert set(on_batch) == {"ExecutionsFailed", "ExecutionsTimedOut"}
    for alarm in on_batch.values():
        (dimension,) = alarm["Dimensions"]
        assert dimension["Name"] == "StateMachineArn" and machine_id in json.dumps(dimension["Value"])
        assert (alarm["Statistic"], alarm["Period"], alarm["Threshold"]) == ("Sum", 300, 0)
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]
