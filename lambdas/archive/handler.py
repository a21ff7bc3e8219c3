"""archive Lambda: decisions the TTL removes from DynamoDB go to the lake (processed/predictions/decisions/, Parquet).

Thin: the event source (the decisions table's stream, filtered to TTL removals) hands over a batch;
`returnguard.archive` turns it into one object per day partition and `DecisionArchive` writes them. Any
error fails the whole batch, which the event source retries from the same record (the object names
follow the batch's first sequence number, so a retry replaces, never duplicates).

Then the decided cases among the removals leave the console's similar-cases index (RG_VECTOR_BUCKET,
RG_VECTOR_INDEX), so the index forgets what the table forgot. That step is best effort: the archive is
written first, and a failure to delete a vector is logged and never fails the batch (a retry would hold
back the archive, and a vector left behind only names a decision the case view leaves out).
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError
from pydantic import BaseModel, Field

from returnguard.archive import archive_objects, reviewed_decision_ids
from returnguard.aws.archive import DecisionArchive
from returnguard.aws.clients import STREAM, bounded_client
from returnguard.aws.similar_cases import forget_cases


class Settings(BaseModel):
    lake_bucket: str = Field(alias="RG_LAKE_BUCKET", min_length=1)
    vector_bucket: str = Field("", alias="RG_VECTOR_BUCKET")  # empty: no similar-cases index to clean
    vector_index: str = Field("", alias="RG_VECTOR_INDEX")


settings = Settings.model_validate(dict(os.environ))  # fails fast, naming the missing variable
logger = Logger()
archive = DecisionArchive(bounded_client("s3", STREAM), settings.lake_bucket)
_vectors: list[Any] = []  # the S3 Vectors client, made at first use


def _forget(records: list[dict[str, Any]]) -> tuple[int, int]:
    """(vectors deleted, vectors that could not be) for the decided cases among the TTL removals."""
    ids = reviewed_decision_ids(records)
    if not ids or not (settings.vector_bucket and settings.vector_index):
        return 0, 0
    try:
        if not _vectors:
            _vectors.append(bounded_client("s3vectors", STREAM))
    except BotoCoreError as error:  # e.g. a boto3 that does not know the service
        logger.warning("similar cases: no S3 Vectors client", extra={"error": str(error), "cases": ids})
        return 0, len(ids)
    failed = forget_cases(_vectors[0], settings.vector_bucket, settings.vector_index, ids)
    if failed:
        logger.warning("similar cases: removed cases left in the index", extra={"cases": failed})
    return len(ids) - len(failed), len(failed)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event.get("Records", [])
    objects, skipped = archive_objects(records)
    keys = archive.write(objects)
    archived = sum(len(o.rows) for o in objects)
    forgotten, not_forgotten = _forget(records)
    logger.info(
        "decisions archived",
        extra={
            "archived": archived,
            "skipped": skipped,
            "objects": keys,
            "similar_cases_forgotten": forgotten,
            "similar_cases_not_forgotten": not_forgotten,
        },
    )
    return {
        "archived": archived,
        "skipped": skipped,
        "objects": keys,
        "similar_cases_forgotten": forgotten,
        "similar_cases_not_forgotten": not_forgotten,
    }
