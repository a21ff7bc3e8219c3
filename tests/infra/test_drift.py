"""The drift job on the synthesized Monitoring stack: its daily schedule, its source per endpoint mode,
its permissions, the alarms past the PSI threshold and the dashboard widgets."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match, Template


def drift_function(template: Template) -> dict:
    (function,) = [
        f
        for f in template.find_resources("AWS::Lambda::Function").values()
        if f["Properties"].get("Environment", {}).get("Variables", {}).get("RG_DRIFT_SOURCE")
    ]
    return function


@pytest.mark.parametrize(("stage", "source"), [("dev", "audit"), ("prod", "capture")])
def test_drift_job_reads_capture_on_realtime_and_the_audit_trail_on_serverless(
    request, stage, source
) -> None:
    template = Template.from_stack(request.getfixturevalue(stage).stacks.monitoring)
    variables = drift_function(template)["Properties"]["Environment"]["Variables"]
    assert variables["RG_DRIFT_SOURCE"] == source
    assert variables["RG_DRIFT_THRESHOLD"] == "0.25"
    assert variables["RG_CAPTURE_PREFIX"] == "models/data-capture/"
    template.has_resource_properties(
        "AWS::Events::Rule", {"ScheduleExpression": "cron(30 1 * * ? *)", "State": "ENABLED"}
    )
    statements = [
        s
        for p in template.find_resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    scans = [s for s in statements if s["Action"] == "dynamodb:Scan"]
    assert bool(scans) is (source == "audit")  # prod never scans the audit table
    (metrics,) = [s for s in statements if s["Action"] == "cloudwatch:PutMetricData"]
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "ReturnGuard"}}
    puts = [s for s in statements if "s3:PutObject" in json.dumps(s["Action"])]
    assert puts and all("processed/drift/*" in json.dumps(s["Resource"]) for s in puts)


def test_feature_and_score_drift_alarm_past_the_threshold_and_show_on_the_dashboard(dev) -> None:
    template = Template.from_stack(dev.stacks.monitoring)
    for metric in ("DriftMaxFeaturePSI", "DriftScorePSI"):
        template.has_resource_properties(
            "AWS::CloudWatch::Alarm",
            {
                "MetricName": metric,
                "Namespace": "ReturnGuard",
                "Threshold": 0.25,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "TreatMissingData": "notBreaching",
                "Period": 86400,
                "AlarmActions": Match.any_value(),
            },
        )
    (dashboard,) = template.find_resources("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for text in ("DriftMaxFeaturePSI", "DriftScorePSI", "DriftLiveRows", "DriftFeaturePSI"):
        assert text in body
