"""batch_file Lambda: the batch state machine's steps for one uploaded transactions file.

Thin: the state machine says which step (`claim`, `convert`, `score`) and passes the claim's output;
batch/steps.py does the work against the lake and the tables. `claim` names the file by its content
digest and decides the route by size; `convert` validates and writes Parquet or quarantines; `score`
writes the predictions and flagged rows and returns the one alert the state machine publishes. An
error fails the step: the state machine releases the claim and fails the execution, so nothing is
half-reported and the same file uploaded again is retried.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from batch import steps
from batch.engine import CONFIG_FILE, MODEL_FILE, Model
from returnguard.aws.batch import bounded_store


class Settings(BaseModel):
    lake_bucket: str = Field(alias="RG_LAKE_BUCKET", min_length=1)
    flagged_table: str = Field(alias="RG_FLAGGED_TABLE", min_length=1)
    claims_table: str = Field(alias="RG_IDEMPOTENCY_TABLE", min_length=1)
    model_prefix: str = Field(alias="RG_MODEL_PREFIX", min_length=1)
    small_file_bytes: int = Field(alias="RG_SMALL_FILE_BYTES", gt=0)
    claim_lease_s: int = Field(alias="RG_CLAIM_LEASE_S", gt=0)
    scorer: Literal["auto", "trees", "xgboost"] = Field(default="auto", alias="RG_SCORER")
    region: str = Field(default="us-east-1", alias="AWS_REGION")


class Request(BaseModel):
    step: Literal["claim", "convert", "score"]
    key: str | None = None
    file: dict[str, Any] | None = None


settings = Settings.model_validate(dict(os.environ))  # fails fast, naming the missing variable
logger = Logger()
store = bounded_store(  # bounded timeouts and attempts: a hung call fails the step, never the whole run
    bucket=settings.lake_bucket, flagged_table=settings.flagged_table, claims_table=settings.claims_table
)
_models: dict[str, Model] = {}


def model() -> Model:
    """The current payments model, read once per execution environment."""
    if "current" not in _models:
        files = store.model_files(settings.model_prefix, (CONFIG_FILE, MODEL_FILE))
        _models["current"] = Model.load(files, settings.scorer)
    return _models["current"]


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = Request.model_validate(event)
    if request.step == "claim":
        assert request.key is not None, "claim needs the uploaded key"
        answer = steps.claim(
            store,
            key=request.key,
            small_file_bytes=settings.small_file_bytes,
            lease_s=settings.claim_lease_s,
            model_prefix=settings.model_prefix,
        )
    elif request.step == "convert":
        answer = steps.convert(store, request.file or {}, model(), settings.region)
    else:
        answer = steps.score_converted(store, request.file or {}, model(), settings.region)
    logger.info(
        "step done", extra={"step": request.step, **{k: v for k, v in answer.items() if k != "alert"}}
    )
    return answer
