"""drift Lambda: once a day, PSI of each feature and of the score over the last day against the serving
model's training window; the report goes to the lake (processed/drift/), the numbers to CloudWatch.

Thin: settings from the environment, the serving model's baseline from its artifact, live rows from data
capture (realtime endpoints) or the audit trail (serverless), then `returnguard.aws.drift_job.run`.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from returnguard.aws import drift_job
from returnguard.aws.clients import DAILY, bounded_client


class Settings(BaseModel):
    endpoint_name: str = Field(alias="RG_ENDPOINT_NAME", min_length=1)
    lake_bucket: str = Field(alias="RG_LAKE_BUCKET", min_length=1)
    source: Literal["capture", "audit"] = Field(alias="RG_DRIFT_SOURCE")
    capture_prefix: str = Field(default="models/data-capture/", alias="RG_CAPTURE_PREFIX")
    audit_table: str = Field(default="", alias="RG_AUDIT_TABLE")
    window_hours: int = Field(default=24, alias="RG_DRIFT_WINDOW_HOURS", ge=1, le=24 * 31)
    drifted: float = Field(default=0.25, alias="RG_DRIFT_THRESHOLD", gt=0.1, le=10)


settings = Settings.model_validate(dict(os.environ))  # fails fast, naming the missing variable
logger = Logger()
s3 = bounded_client("s3", DAILY)
sagemaker = bounded_client("sagemaker", DAILY)
cloudwatch = bounded_client("cloudwatch", DAILY)
dynamodb = bounded_client("dynamodb", DAILY)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    until = datetime.now(timezone.utc)
    since = until - timedelta(hours=settings.window_hours)
    artifact = drift_job.serving_model_data_url(sagemaker, settings.endpoint_name)
    baseline = drift_job.baseline_from_artifact(s3, artifact)
    if settings.source == "capture":
        rows = drift_job.captured_rows(
            s3, settings.lake_bucket, settings.capture_prefix, settings.endpoint_name, since, until
        )
    else:
        rows = drift_job.audit_rows(dynamodb, settings.audit_table, since, until)
    report, key = drift_job.run(
        baseline=baseline,
        rows=rows,
        since=since,
        until=until,
        source=settings.source,
        s3=s3,
        bucket=settings.lake_bucket,
        cloudwatch=cloudwatch,
        drifted=settings.drifted,
    )
    summary = {k: v for k, v in report.as_dict().items() if k != "features"}
    logger.info("drift report written", extra={"key": key, **summary})
    return {"report": key, **summary}
