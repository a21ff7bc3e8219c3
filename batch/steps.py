"""The batch state machine's steps, as functions of a BatchStore: the Lambda runs claim / convert / score,
the Glue job runs claim's output through `process` (convert and score in one pass), and `returnguard batch
score` runs them in the state machine's order against local AWS.

Each step returns a JSON-able document for the next state: `claim` names the file (digest, size, route),
`convert` and `score` an outcome with `status` ("valid", "quarantined" or "scored") and, for the last
step, the one `alert` (SNS subject + per-protocol message) the state machine publishes.
"""

from __future__ import annotations

import json
import time
from typing import Any

from batch.engine import CONFIG_FILE, MODEL_FILE, Model, Scored, read_file, score, to_parquet
from returnguard.aws.batch import BatchStore, claim_id
from returnguard.batch import (
    MODEL_PREFIX,
    BatchFileError,
    converted_key,
    file_format,
    quarantine_alert,
    quarantine_keys,
    route,
    scored_alert,
    summary_key,
)

MODEL_FILES = (CONFIG_FILE, MODEL_FILE)


def claim(
    store: BatchStore,
    *,
    key: str,
    small_file_bytes: int,
    lease_s: int,
    model_prefix: str = MODEL_PREFIX,
    now: int | None = None,
) -> dict[str, Any]:
    """ModelNotPublished before anything is claimed when no model is published: the run fails with that
    reason, and the file, still unclaimed, is scored when uploaded again after `batch publish-model`."""
    store.require_model(model_prefix, MODEL_FILES)
    digest, size = store.digest(key)
    first = store.claim(digest, key, int(now if now is not None else time.time()), lease_s)
    return {
        "bucket": store.bucket,
        "key": key,
        "digest": digest,
        "size_bytes": size,
        "format": file_format(key) or "unknown",
        "route": route(size, small_file_bytes),
        "duplicate": not first,
        "claim_id": claim_id(digest),
        "summary_key": summary_key(digest),
    }


def quarantine(store: BatchStore, file: dict[str, Any], error: BatchFileError, region: str) -> dict[str, Any]:
    """Move the file out of incoming/, next to its report; nothing of it is scored."""
    report = error.report.as_dict()
    quarantined, report_key = quarantine_keys(file["digest"], file["key"])
    store.put(report_key, json.dumps(report, indent=2), "application/json")
    store.move(file["key"], quarantined)
    return {
        "status": "quarantined",
        "report_key": report_key,
        "quarantined_key": quarantined,
        "problem_counts": report["problem_counts"],
        "alert": quarantine_alert(report, store.bucket, quarantined, region),
    }


def convert(store: BatchStore, file: dict[str, Any], model: Model, region: str) -> dict[str, Any]:
    """Validate the whole file and write it as Parquet, or quarantine it."""
    data = store.get(file["key"])
    try:
        table = read_file(data, file["key"], file["digest"], model.schema)
    except BatchFileError as error:
        return quarantine(store, file, error, region)
    key = converted_key(file["digest"])
    store.put(key, to_parquet(table), "application/vnd.apache.parquet")
    return {"status": "valid", "rows": table.num_rows, "converted_key": key}


def _publish_scored(
    store: BatchStore, file: dict[str, Any], model: Model, scored: Scored, region: str
) -> dict[str, Any]:
    now = int(time.time())
    store.put(scored.result.predictions_key, to_parquet(scored.predictions), "application/vnd.apache.parquet")
    store.write_flagged(file["digest"], file["key"], model.version, scored.flagged, now)
    result = scored.result.as_dict()
    return {
        "status": "scored",
        "rows": result["rows"],
        "flagged": result["flagged"],
        "predictions_key": result["predictions_key"],
        "alert": scored_alert(result, region),
    }


def score_converted(
    store: BatchStore, file: dict[str, Any], model: Model, region: str, explain: str = "flagged"
) -> dict[str, Any]:
    """Score the converted Parquet: predictions to processed/predictions/, flagged rows to DynamoDB."""
    import io

    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(store.get(converted_key(file["digest"]))))
    scored = score(
        table,
        model,
        bucket=store.bucket,
        source_key=file["key"],
        digest=file["digest"],
        file_kind=file["format"],
        explain=explain,
    )
    return _publish_scored(store, file, model, scored, region)


def process(
    store: BatchStore, file: dict[str, Any], model: Model, region: str, explain: str = "flagged"
) -> dict[str, Any]:
    """Convert and score in one pass (the Glue job: a file too large to read twice); the outcome is also
    written to the file's summary.json, where the state machine reads it after the job."""
    outcome = convert(store, file, model, region)
    if outcome["status"] == "valid":
        outcome = score_converted(store, file, model, region, explain)
    store.put(file["summary_key"], json.dumps(outcome), "application/json")
    return outcome
