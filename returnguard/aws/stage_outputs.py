"""What a deployed stage's stacks say about themselves: their CloudFormation outputs."""

from __future__ import annotations

from typing import Any


def data_stack(stage: str) -> str:
    return f"ReturnGuard-{stage}-Data"


def lake_bucket(cloudformation: Any, stage: str) -> str | None:
    """The `LakeBucket` output of ReturnGuard-<stage>-Data; None when the stack has no such output."""
    (found,) = cloudformation.describe_stacks(StackName=data_stack(stage))["Stacks"]
    for output in found.get("Outputs", []):
        if output["OutputKey"] == "LakeBucket":
            return str(output["OutputValue"])
    return None
