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


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_drift_job_describes_only_this_stages_configs_and_models(request, stage) -> None:
    # the serving config and model are the Ml stack's bootstrap ones or <prefix>-* (what promotion names)
    synth = request.getfixturevalue(stage)
    template = Template.from_stack(synth.stacks.monitoring)
    (describe,) = [
        s
        for p in template.find_resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if "sagemaker:DescribeModel" in s["Action"]
    ]
    assert sorted(describe["Action"]) == ["sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel"]
    resources = [json.dumps(r) for r in describe["Resource"]]
    assert len(resources) == 4
    prefix = synth.config.prefix
    assert sum(r.endswith(f':endpoint-config/{prefix}-*"]]}}') for r in resources) == 1
    assert sum(r.endswith(f':model/{prefix}-*"]]}}') for r in resources) == 1
    imported = [r for r in resources if "Fn::ImportValue" in r]
    assert len(imported) == 2
    assert [r for r in imported if "ExportsOutputRefEndpointConfig" in r]
    assert [r for r in imported if "ExportsOutputRefBootstrapModel" in r]
    assert not [r for r in resources if r.endswith(('endpoint-config/*"]]}', 'model/*"]]}'))]
