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


def test_training_gets_the_serving_model_as_its_champion_channel(dev):
    states = pipeline_states(dev)
    order = ["BuildFeatures", "ServingEndpoint", "ServingConfig", "ServingModel", "Train", "GateCandidate"]
    assert [states[name]["Next"] for name in order[:-1]] == order[1:]
    assert states["ServingConfig"]["Parameters"] == {
        "EndpointConfigName.$": "$.champion_endpoint.config_name"
    }
    assert states["ServingConfig"]["ResultSelector"] == {
        "model_name.$": "States.ArrayGetItem($.ProductionVariants[*].ModelName, 0)"
    }
    channels = {c["ChannelName"]: c for c in states["Train"]["Parameters"]["InputDataConfig"]}
    champion = channels["champion"]["DataSource"]["S3DataSource"]
    assert champion["S3Uri.$"] == "$.champion.model_data_url"


def test_every_candidate_is_registered_with_the_gate_decision_and_only_an_approved_one_is_promoted(dev):
    states = pipeline_states(dev)
    gate = states["GateCandidate"]
    assert gate["Resource"] == "arn:aws:states:::lambda:invoke"
    assert gate["Parameters"]["Payload"] == {
        "ModelArtifact.$": "$.training.ModelArtifacts.S3ModelArtifacts",
        "Execution.$": "$$.Execution.Name",
        "ServingArtifact.$": "$.champion.model_data_url",  # for a lane promoted alone (issue 11)
    }
    assert gate["Next"] == "RegisterModel" and "Catch" not in gate  # a failing gate fails the run
    register = states["RegisterModel"]["Parameters"]
    assert register["ModelApprovalStatus.$"] == "$.gate.approval_status"
    assert register["CustomerMetadataProperties.$"] == "$.gate.metadata"
    assert register["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri.$"] == "$.gate.record_url"
    assert states["RegisterModel"]["Next"] == "Approved"
    approved, lanes = states["Approved"]["Choices"]
    assert approved == {"Variable": "$.gate.approved", "BooleanEquals": True, "Next": "CreateModel"}
    # otherwise only the serving archive with an approved lane swapped in, registered Approved on its own
    assert lanes == {
        "Variable": "$.gate.lanes_promoted",
        "BooleanEquals": True,
        "Next": "RegisterLanePromotion",
    }
    lane_package = states["RegisterLanePromotion"]["Parameters"]
    assert lane_package["ModelApprovalStatus"] == "Approved"
    (container,) = lane_package["InferenceSpecification"]["Containers"]
    assert container["ModelDataUrl.$"] == "$.gate.serve_artifact"
    assert states[states["Approved"]["Default"]]["Type"] == "Succeed"
    promoting = {name for name, s in states.items() if "CreateModel" in _next_states(s)}
    assert promoting == {"Approved", "RegisterLanePromotion"}


def test_the_gate_function_gets_the_stage_bounds_and_reads_models_writes_decisions_only(dev):
    pipeline = Template.from_stack(dev.stacks.pipeline)
    functions = pipeline.find_resources("AWS::Lambda::Function")
    (gate,) = [(k, f["Properties"]) for k, f in functions.items() if "RG_GATE_BOUNDS" in json.dumps(f)]
    bounds = json.loads(gate[1]["Environment"]["Variables"]["RG_GATE_BOUNDS"])
    assert bounds == dev.config.gate.as_dict()
    role = gate[1]["Role"]["Fn::GetAtt"][0]
    policies = [
        p["Properties"]
        for p in pipeline.find_resources("AWS::IAM::Policy").values()
        if {"Ref": role} in p["Properties"]["Roles"]
    ]
    s3 = {
        s["Action"]: json.dumps(s["Resource"])
        for p in policies
        for s in p["PolicyDocument"]["Statement"]
        if str(s["Action"]).startswith("s3:")
    }
    assert set(s3) == {"s3:GetObject", "s3:PutObject"}
    assert "/models/artifacts/*" in s3["s3:GetObject"]
    assert "/models/metadata/gate-decisions/*" in s3["s3:PutObject"]


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
    # The bootstrap config (CloudFormation-named, from the Ml stack) and the pipeline's own configs
    # (the promote function copies them; the state machine reads the serving one to find the champion).
    for describe in by_action["sagemaker:DescribeEndpointConfig"]:
        assert "ExportsOutputRefEndpointConfig" in json.dumps(describe["Resource"])
    (grant,) = by_action["kms:CreateGrant"]
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
