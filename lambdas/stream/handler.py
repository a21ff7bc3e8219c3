"""stream Lambda: Kinesis `events` → online aggregates and `order#` records in `features` (exactly once) +
raw events in the lake.

Thin: the batch is parsed, applied as a whole by `returnguard.aws.stream_apply` (each touched item
read and written once), and Powertools batch processing reports each record's outcome as a partial
batch response:
- a record that can never apply (not base64/JSON, envelope or payload invalid) goes to the
  dead-letter queue with its reason and counts as handled, so it never blocks the shard;
- a duplicate event id is skipped;
- anything transient (throttling, a version conflict that will not settle, S3 or SQS down) fails
  the earliest record it touched, and every later record of the batch with it: Kinesis redelivers
  from there, in order, and the applier skips what each record already did.
"""

from __future__ import annotations

import base64
import json
import os
from collections import Counter
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from returnguard.aws.clients import STREAM, bounded_client
from returnguard.aws.stream_apply import Position, StreamApplier, StreamRecord
from returnguard.events import InvalidEvent, parse
from returnguard.returns_rules import DEFAULT_RETURN_WINDOW_DAYS


class Settings(BaseModel):
    features_table: str = Field(alias="RG_FEATURES_TABLE", min_length=1)
    idempotency_table: str = Field(alias="RG_IDEMPOTENCY_TABLE", min_length=1)
    lake_bucket: str = Field(default="", alias="RG_LAKE_BUCKET")
    dlq_url: str = Field(alias="RG_DLQ_URL", min_length=1)
    # the deployment's return window (the `return_policy` context): how long `order#` records are kept
    return_window_days: int = Field(
        default=DEFAULT_RETURN_WINDOW_DAYS, alias="RG_RETURN_WINDOW_DAYS", ge=1, le=365
    )


settings = Settings.model_validate(dict(os.environ))  # fails fast, naming the missing variable
logger = Logger()
tracer = Tracer()
metrics = Metrics()
# A failure on an item the first record touched fails every record: answer that as a partial batch
# response too (Kinesis retries from the first record) rather than as a function error.
processor = BatchProcessor(event_type=EventType.KinesisDataStreams, raise_on_entire_batch_failure=False)
applier = StreamApplier(
    bounded_client("dynamodb", STREAM),
    settings.features_table,
    settings.idempotency_table,
    bounded_client("s3", STREAM) if settings.lake_bucket else None,
    settings.lake_bucket,
    settings.return_window_days,
)
_sqs = bounded_client("sqs", STREAM)


class SkippedAfterFailure(RuntimeError):
    """An earlier record of this batch failed: this one waits for the redelivery, to keep order."""


class _Batch:
    """This invocation's verdicts, by sequence number, for the record handler to report."""

    outcome: dict[str, str] = {}  # 'applied', 'duplicate' or 'poison' (the reason in `poison`)
    poison: dict[str, str] = {}
    failed_from: int | None = None  # a sequence number: it and every later record failed
    error: BaseException | None = None
    counts: Counter[str] = Counter()  # this invocation's metrics, emitted once at its end


batch = _Batch()


def _apply(records: list[dict[str, Any]]) -> None:
    """Parse every record, apply the valid ones as one batch, and note each record's verdict."""
    batch.outcome, batch.poison, batch.failed_from, batch.error = {}, {}, None, None
    batch.counts = Counter()
    valid: list[StreamRecord] = []
    sequences: list[str] = []
    for raw_record in records:
        record = KinesisStreamRecord(raw_record)
        sequence = record.kinesis.sequence_number
        try:
            try:
                data = base64.b64decode(record.kinesis.data, validate=True)
            except ValueError:
                raise InvalidEvent("data is not base64") from None
            envelope, payload = parse(data)
        except InvalidEvent as error:
            batch.poison[sequence] = str(error)
            continue
        shard = record.event_id.split(":", 1)[0]
        valid.append(StreamRecord(envelope, payload, Position(shard, int(sequence)), data))
        sequences.append(sequence)
    result = applier.apply_batch(valid)
    batch.outcome = dict(zip(sequences, result.outcomes, strict=False))
    if result.failed_from is not None:
        batch.failed_from, batch.error = int(sequences[result.failed_from]), result.error
        logger.error(
            "batch failed from a record on, which will be redelivered",
            extra={"sequence_number": sequences[result.failed_from], "error": repr(result.error)},
        )


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
    batch.counts["PoisonRecords"] += 1


def record_handler(record: KinesisStreamRecord) -> str:
    sequence = record.kinesis.sequence_number
    if batch.failed_from is not None and int(sequence) >= batch.failed_from:
        if int(sequence) == batch.failed_from and batch.error is not None:
            raise batch.error
        raise SkippedAfterFailure(record.event_id)
    if sequence in batch.poison:
        try:
            _dead_letter(record, batch.poison[sequence])
        except Exception:
            batch.failed_from = int(sequence)  # nothing later is reported done before this one is
            raise
        return "poison"
    outcome = batch.outcome[sequence]
    batch.counts["EventsApplied" if outcome == "applied" else "DuplicateEvents"] += 1
    return outcome


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    _apply(event.get("Records", []))
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    # RecordsRetried: redelivered by Kinesis; a steady count means throttling or a stuck record
    batch.counts["RecordsRetried"] = len(response.get("batchItemFailures", []))
    for name, count in batch.counts.items():
        if count:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=count)
    return response
