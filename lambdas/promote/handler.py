"""promote Lambda: the retraining state machine's promotion step.

Thin: the state machine passes the new model's name and the config name to create; the endpoint comes
from the environment. `returnguard.aws.promotion.promote` publishes the model's serving profile (its
thresholds and fallback, read by the score function) to the lake, copies the serving config with the new model
and updates the endpoint; any error fails the step (and the execution), so the endpoint keeps its model.
The state machine then waits for InService on the new config before it records the serving metrics.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from returnguard.aws.clients import CONTROL, bounded_client
from returnguard.aws.promotion import promote


class Settings(BaseModel):
    endpoint_name: str = Field(alias="RG_ENDPOINT_NAME", min_length=1)
    # where the promoted model's serving profile (thresholds, fallback) goes: models/serving/ in the lake
    lake_bucket: str = Field(alias="RG_LAKE_BUCKET", min_length=3)


class Promotion(BaseModel):
    model_name: str = Field(alias="ModelName", min_length=1, max_length=63)
    endpoint_config_name: str = Field(alias="EndpointConfigName", min_length=1, max_length=63)
    variant_name: str | None = Field(default=None, alias="VariantName")


settings = Settings.model_validate(dict(os.environ))  # fails fast, naming the missing variable
logger = Logger()
sagemaker = bounded_client("sagemaker", CONTROL)
s3 = bounded_client("s3", CONTROL)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    request = Promotion.model_validate(event)
    result = promote(
        sagemaker,
        endpoint_name=settings.endpoint_name,
        config_name=request.endpoint_config_name,
        model_name=request.model_name,
        variant_name=request.variant_name,
        s3=s3,
        lake_bucket=settings.lake_bucket,
    )
    logger.info("endpoint update started", extra={"endpoint": settings.endpoint_name, **result})
    return result
