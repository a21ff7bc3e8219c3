"""stream Lambda: Kinesis `events` → online aggregates in `features` (exactly once) + raw events in the lake.

Thin: Powertools batch processing with partial batch responses. Per record:
- a record that can never apply (not base64/JSON, envelope or payload invalid) goes to the
  dead-letter queue with its reason and counts as handled, so it never blocks the shard;
- a duplicate event id is skipped;
- anything transient (throttling, a version conflict that will not settle, S3 or SQS down) fails
  the record, and every later record of the batch with it: Kinesis redelivers from the first
  failure, in order, and `returnguard.aws.stream_apply` skips what each record already did.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from returnguard.aws.stream_apply import Position, StreamApplier
from returnguard.events import InvalidEvent, parse


class Settings(BaseModel):
    features_table: str = Field(alias="RG_FEATURES_TABLE", min_length=1)
    idempotency_table: str = Field(alias="RG_IDEMPOTENCY_TABLE", min_length=1)
    lake_bucket: str = Field(default="", alias="RG_LAKE_BUCKET")
    dlq_url: str = Field(alias="RG_DLQ_URL", min_length=1)


settings = Settings.model_validate(dict(os.environ))  # fails fast, naming the missing variable
logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
applier = StreamApplier(
    boto3.client("dynamodb"),
    settings.features_table,
    settings.idempotency_table,
    boto3.client("s3") if settings.lake_bucket else None,
    settings.lake_bucket,
)
_sqs = boto3.client("sqs")


class SkippedAfterFailure(RuntimeError):
    """An earlier record of this batch failed: this one waits for the redelivery, to keep order."""


class _Batch:
    failed = False


batch = _Batch()


def _dead_letter(record: KinesisStreamRecord, reason: str) -> None:
    _sqs.send_message(
        QueueUrl=settings.dlq_url,
        MessageBody=json.dumps(
            {
                "reason": reason,
                "event_id": record.event_id,
                "sequence_number": record.kinesis.sequence_number,
                "partition_key": record.kinesis.partition_key,
                "data_base64": record.kinesis.data,
            }
        ),
    )
    logger.warning(
        "poison record to the dead-letter queue", extra={"reason": reason, "record": record.event_id}
    )
    metrics.add_metric(name="PoisonRecords", unit=MetricUnit.Count, value=1)


def record_handler(record: KinesisStreamRecord) -> str:
    if batch.failed:
        raise SkippedAfterFailure(record.event_id)
    try:
        try:
            data = base64.b64decode(record.kinesis.data, validate=True)
        except ValueError:
            raise InvalidEvent("data is not base64") from None
        envelope, payload = parse(data)
    except InvalidEvent as error:
        try:
            _dead_letter(record, str(error))
        except Exception:
            batch.failed = True
            raise
        return "poison"
    shard = record.event_id.split(":", 1)[0]
    try:
        outcome = applier.apply(envelope, payload, Position(shard, int(record.kinesis.sequence_number)), data)
    except Exception:
        batch.failed = True
        logger.exception("record failed, will be redelivered", extra={"record": record.event_id})
        raise
    metrics.add_metric(
        name="EventsApplied" if outcome == "applied" else "DuplicateEvents", unit=MetricUnit.Count, value=1
    )
    return outcome


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    batch.failed = False
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
