"""console_clusters Lambda: the return reason clusters in AWS, run once a day by an EventBridge schedule.

Reads the latest written return reasons of the last 30 days from the lake's raw/returns, embeds them with
Titan Text Embeddings V2 through the `reasons` S3 Vectors index (each reason embedded once while it stays
in the window), groups them with the local report's code (returnguard/reason_clusters.py) and writes the
report to the lake's reports/reason-clusters/, which the console shows leads at /clusters. Then it deletes
from the index every reason that is not in this report, so the index never holds more than one window.
A failure there fails the run after the report is written: the schedule's retry embeds nothing again,
and the dead-letter queue alarms if it keeps failing.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from returnguard.aws.clients import DAILY, bounded_client
from returnguard.aws.reason_clusters import IndexedEncoder, latest_reasons, write_report
from returnguard.aws.similar_cases import TitanEmbedder
from returnguard.reason_clusters import reason_clusters, reason_clusters_html

DAYS, LATEST, CLUSTERS = 30, 2_000, 8


class Settings(BaseModel):
    lake_bucket: str = Field(alias="RG_LAKE_BUCKET", min_length=1)
    vector_bucket: str = Field(alias="RG_VECTOR_BUCKET", min_length=1)
    reasons_index: str = Field(alias="RG_REASONS_INDEX", min_length=1)


settings = Settings.model_validate(dict(os.environ))
logger = Logger()
s3 = bounded_client("s3", DAILY)
encoder = IndexedEncoder(
    TitanEmbedder(bounded_client("bedrock-runtime", DAILY)),
    bounded_client("s3vectors", DAILY),
    settings.vector_bucket,
    settings.reasons_index,
)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    reasons, codes, months, total = latest_reasons(s3, settings.lake_bucket, now, DAYS, LATEST)
    before = encoder.embedded
    clusters = reason_clusters(reasons, codes, months, CLUSTERS, encoder.encode)
    section = (
        f'<p class="hint">Computed {now:%Y-%m-%d %H:%M} UTC from the newest returns of the last {DAYS} days.</p>'
        + reason_clusters_html(clusters, len(reasons), total, "Amazon Titan Text Embeddings V2")
    )
    keys = write_report(s3, settings.lake_bucket, section, now)
    forgotten = encoder.keep_only(reasons)
    summary = {
        "reasons": len(reasons),
        "embedded": encoder.embedded - before,
        "clusters": len(clusters),
        "forgotten": forgotten,
    }
    logger.info("reason clusters written", extra={**summary, "keys": keys})
    return {**summary, "report": keys[0]}
