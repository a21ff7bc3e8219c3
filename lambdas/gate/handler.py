"""gate Lambda: the retraining state machine's promotion gate.

Thin: the state machine passes the candidate's model artifact and the execution's name; the lake bucket
and the gate's bounds come from the environment (RG_GATE_BOUNDS: JSON, the stage's cdk.json `gate`).
`returnguard.aws.gate_record.gate_candidate` reads the evidence training wrote, judges it against the
feature list this deployment serves, records the decision in the lake, and returns it; the state machine
registers the candidate with that status and promotes only an approved one, or, when the order
candidate is rejected but a retrained lane's is approved, the serving archive (ServingArtifact) with
that lane replaced (returnguard.aws.lane_promotion), registered and promoted on its own.
"""

from __future__ import annotations

import json
import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field, field_validator

from returnguard.aws.clients import CONTROL, bounded_client
from returnguard.aws.gate_record import gate_candidate
from returnguard.features import FEATURE_NAMES
from returnguard.gate import GateBounds


class Settings(BaseModel):
    lake_bucket: str = Field(alias="RG_LAKE_BUCKET", min_length=3)
    bounds: GateBounds = Field(alias="RG_GATE_BOUNDS")

    @field_validator("bounds", mode="before")
    @classmethod
    def parse_bounds(cls, value: Any) -> GateBounds:
        return GateBounds.from_mapping(json.loads(value) if isinstance(value, str) else value)


class Candidate(BaseModel):
    model_artifact: str = Field(alias="ModelArtifact", pattern=r"^s3://")
    execution: str = Field(alias="Execution", min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_-]+$")
    # the serving model's archive (the champion), the base of a lane promotion
    serving_artifact: str | None = Field(default=None, alias="ServingArtifact", pattern=r"^s3://")


settings = Settings.model_validate(dict(os.environ))  # fails fast, naming the missing variable
logger = Logger()
s3 = bounded_client("s3", CONTROL)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    candidate = Candidate.model_validate(event)
    result = gate_candidate(
        s3,
        lake_bucket=settings.lake_bucket,
        artifact_url=candidate.model_artifact,
        execution=candidate.execution,
        serving_features=FEATURE_NAMES,
        bounds=settings.bounds,
        serving_url=candidate.serving_artifact,
    )
    logger.info("gate decision", extra={"execution": candidate.execution, **result})
    return result
