"""archive Lambda: decisions the TTL removes from DynamoDB go to the lake (processed/predictions/decisions/, Parquet).

Thin: the event source (the decisions table's stream, filtered to TTL removals) hands over a batch;
`returnguard.archive` turns it into one object per day partition and `DecisionArchive` writes them. Any
error fails the whole batch, which the event source retries from the same record (the object names
follow the batch's first sequence number, so a retry replaces, never duplicates).
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from returnguard.archive import archive_objects
from returnguard.aws.archive import DecisionArchive


class Settings(BaseModel):
    lake_bucket: str = Field(alias="RG_LAKE_BUCKET", min_length=1)


settings = Settings.model_validate(dict(os.environ))  # fails fast, naming the missing variable
logger = Logger()
archive = DecisionArchive(boto3.client("s3"), settings.lake_bucket)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    objects, skipped = archive_objects(event.get("Records", []))
    keys = archive.write(objects)
    archived = sum(len(o.rows) for o in objects)
    logger.info("decisions archived", extra={"archived": archived, "skipped": skipped, "objects": keys})
    return {"archived": archived, "skipped": skipped, "objects": keys}
