"""blocklist_sync Lambda: scheduled; syncs the MySQL blocklist into S3 and the features table."""

from __future__ import annotations

import os
from pathlib import Path

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from returnguard.aws.blocklist import (
    BlocklistSyncError,
    DynamoBlocklistTable,
    MySQLBlocklistSource,
    S3SnapshotWriter,
    sync,
)
from returnguard.aws.clients import DAILY, bounded_client

CA_BUNDLE = Path(__file__).with_name("rds-ca-bundle.pem")


class Settings(BaseModel):
    features_table: str = Field(alias="RG_FEATURES_TABLE", min_length=1)
    lake_bucket: str = Field(alias="RG_LAKE_BUCKET", min_length=1)
    db_secret_arn: str = Field(alias="RG_DB_SECRET_ARN", min_length=1)
    db_name: str | None = Field(default=None, alias="RG_DB_NAME")
    stage: str = Field(default="dev", alias="RG_STAGE")
    # The CA bundle the stack ships beside this file (RDS's global bundle unless configured otherwise).
    db_ca_bundle: str = Field(default=str(CA_BUNDLE), alias="RG_DB_CA_BUNDLE")


settings = Settings.model_validate(dict(os.environ))  # fails fast, naming the missing variable
logger = Logger(service="blocklist_sync")
# The sync's own log lines (summary, skipped rows) as the same structured JSON.
copy_config_to_registered_loggers(source_logger=logger, include={"returnguard"})
source = MySQLBlocklistSource(
    bounded_client("secretsmanager", DAILY),
    settings.db_secret_arn,
    settings.db_name or None,
    ca_bundle=settings.db_ca_bundle,
)
snapshots = S3SnapshotWriter(bounded_client("s3", DAILY), settings.lake_bucket)
table = DynamoBlocklistTable(bounded_client("dynamodb", DAILY), settings.features_table)


@logger.inject_lambda_context
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    try:
        result = sync(source, snapshots, table)
    except BlocklistSyncError as error:
        logger.error("blocklist sync failed", extra={"code": error.code, "detail": str(error)})
        raise
    return {"status": "ok", **result.as_dict()}
