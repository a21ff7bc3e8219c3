"""console_summary Lambda: the team leads' daily review summary, run once a day by an EventBridge schedule.

Reads the cases that needed a person from the decisions' sparse by_review index (and the flagged batch
rows), builds the template summary of the last 24 hours (`returnguard.console.daily_summary`), lets
Bedrock rewrite it when a model is configured (returnguard/aws/daily_summary.py: checked, the template
on any failure) and publishes it to the leads' SNS topic.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from returnguard.aws.clients import DAILY, bounded_client
from returnguard.aws.daily_summary import SummaryWriter, publish
from returnguard.aws.reviews import ReviewStore
from returnguard.console import daily_summary
from returnguard.narrative import bedrock_config

POPULATION = "decisions that needed a person"


class Settings(BaseModel):
    decisions_table: str = Field(alias="RG_DECISIONS_TABLE", min_length=1)
    audit_table: str = Field(alias="RG_AUDIT_TABLE", min_length=1)
    flagged_table: str = Field(alias="RG_FLAGGED_TABLE", min_length=1)
    topic_arn: str = Field(alias="RG_SUMMARY_TOPIC_ARN", min_length=1)
    model_id: str = Field(alias="RG_BEDROCK_MODEL_ID", default="")  # empty: the template only


class NoLabels:
    def write(self, row: dict[str, Any], name: str) -> str:
        raise RuntimeError("the summary function records no verdicts")


settings = Settings.model_validate(dict(os.environ))
logger = Logger()
store = ReviewStore(
    bounded_client("dynamodb", DAILY),
    settings.decisions_table,
    settings.audit_table,
    NoLabels(),
    settings.flagged_table,
)
writer = SummaryWriter(boto3.client("bedrock-runtime", config=bedrock_config(20.0)), settings.model_id)
sns = bounded_client("sns", DAILY)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    sections = daily_summary(store.review_cases(), now, population=POPULATION)
    summary = writer.write(sections, now)
    message_id = publish(sns, settings.topic_arn, summary, now)
    logger.info("daily summary sent", extra={"source": summary.source, "message_id": message_id})
    return {"source": summary.source, "message_id": message_id, "chars": len(summary.text)}
