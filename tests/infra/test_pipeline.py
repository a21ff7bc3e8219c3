"""The retraining state machine as synthesized: every task that starts work waits for it, and the
promotion keeps the serving endpoint's settings, waits for InService and fails closed."""

from __future__ import annotations

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
