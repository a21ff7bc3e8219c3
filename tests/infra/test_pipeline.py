"""The retraining state machine as synthesized: every task that starts work waits for it, and the
promotion keeps the serving endpoint's settings, waits for InService and fails closed."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Template

from local import state_machine

# SageMaker/Glue/Batch/ECS APIs that only start work; a task calling one must wait for it (`.sync`).
STARTS_WORK = (
    "glue:startJobRun",
    "sagemaker:createTrainingJob",
    "sagemaker:createTransformJob",
    "sagemaker:createProcessingJob",
    "batch:submitJob",
    "ecs:runTask",
)


def pipeline_states(synth) -> dict:
    return state_machine.states(Template.from_stack(synth.stacks.pipeline).to_json())


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_training_and_feature_build_wait_for_their_jobs(request, stage):
    states = pipeline_states(request.getfixturevalue(stage))
    assert states["Train"]["Resource"] == "arn:aws:states:::sagemaker:createTrainingJob.sync"
    assert states["BuildFeatures"]["Resource"] == "arn:aws:states:::glue:startJobRun.sync"
    tasks = {name: s["Resource"] for name, s in states.items() if s["Type"] == "Task"}
    starting = {name: r for name, r in tasks.items() if r.split(":::")[-1].startswith(STARTS_WORK)}
    assert set(starting) >= {"Train", "BuildFeatures"}
    assert all(resource.endswith(".sync") for resource in starting.values()), starting


def _next_states(state: dict) -> set[str]:
    targets = {state.get("Next"), state.get("Default")}
    targets |= {choice["Next"] for choice in state.get("Choices", [])}
    targets |= {catch["Next"] for catch in state.get("Catch", [])}
    return {t for t in targets if t}


def test_only_a_missing_serving_metrics_object_means_no_serving_model(dev):
    states = pipeline_states(dev)
    (catch,) = states["ServingMetrics"]["Catch"]
    # AccessDenied / KMS errors come as S3.S3Exception and the like: they must fail the run.
    assert catch["ErrorEquals"] == ["S3.NoSuchKeyException"]
    assert catch["Next"] == "NoServingMetrics"
    # S3 says NoSuchKey (not AccessDenied) for a missing key only to a caller that may list it.
    policies = Template.from_stack(dev.stacks.pipeline).find_resources("AWS::IAM::Policy")
    statements = [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]
    (listing,) = [s for s in statements if s["Action"] == "s3:ListBucket"]
    assert listing["Condition"] == {"StringEquals": {"s3:prefix": ["models/metadata/serving-metrics.json"]}}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_serving_metrics_are_recorded_only_once_the_endpoint_serves_the_new_config(request, stage):
    states = pipeline_states(request.getfixturevalue(stage))
    # No state builds an endpoint config from scratch: the promote step copies the serving one.
    resources = [s.get("Resource", "") for s in states.values()]
    assert not [r for r in resources if r.endswith(("createEndpointConfig", "updateEndpoint"))]
    assert states["PromoteEndpoint"]["Resource"] == "arn:aws:states:::lambda:invoke"
    assert states["PromoteEndpoint"]["Next"] == "WaitForEndpoint"
    assert states["WaitForEndpoint"]["Next"] == "DescribeEndpoint"
    assert states["DescribeEndpoint"]["Resource"].endswith(":sagemaker:describeEndpoint")
    before_record = {name for name, s in states.items() if "RecordServingMetrics" in _next_states(s)}
    assert before_record == {"EndpointUpdated"}
    choice = states["EndpointUpdated"]
    (recorded,) = [c for c in choice["Choices"] if c["Next"] == "RecordServingMetrics"]
    assert {"Variable": "$.endpoint.status", "StringEquals": "InService"} in recorded["And"]
    assert {
        "Variable": "$.endpoint.config_name",
        "StringEqualsPath": "$.promotion.endpoint_config_name",
    } in recorded["And"]
    (waiting,) = [c for c in choice["Choices"] if c["Next"] == "WaitForEndpoint"]
    assert {c["StringEquals"] for c in waiting["Or"]} == {
        "Creating",
        "Updating",
        "SystemUpdating",
        "RollingBack",
    }
    assert states[choice["Default"]]["Type"] == "Fail"


def test_promote_function_may_copy_the_serving_config_and_update_only_the_scoring_endpoint(prod):
    pipeline = Template.from_stack(prod.stacks.pipeline)
    functions = pipeline.find_resources("AWS::Lambda::Function")
    (promote,) = [f["Properties"] for f in functions.values() if "RG_ENDPOINT_NAME" in json.dumps(f)]
    assert promote["Environment"]["Variables"]["RG_ENDPOINT_NAME"] == "returnguard-prod-scoring"
    statements = [
        s
        for p in pipeline.find_resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    by_action = {}
    for statement in statements:
        for action in statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]:
            by_action.setdefault(action, []).append(statement)
    (update,) = by_action["sagemaker:UpdateEndpoint"]
    assert "endpoint/returnguard-prod-scoring" in json.dumps(update["Resource"])
    (describe,) = by_action["sagemaker:DescribeEndpointConfig"]
    # The bootstrap config (CloudFormation-named, from the Ml stack) and the pipeline's own configs.
    assert "ExportsOutputRefEndpointConfig" in json.dumps(describe["Resource"])
    (grant,) = by_action["kms:CreateGrant"]
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
