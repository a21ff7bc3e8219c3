"""Batch scoring of an uploaded transactions file (seed 003): the file contract, where each output goes,
what a validation report and an alert say. Pure: the engine (batch/engine.py), the Lambda, the Glue job
and `returnguard batch score` all build on these.

A file is named by the SHA-256 of its bytes (its digest): every output is keyed on it, so the same file
uploaded twice, under any name, writes the same objects and items and alerts once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote

# Uploads under this prefix of the lake start the batch state machine (S3 → EventBridge).
INCOMING_PREFIX = "incoming/batch/"
PREDICTIONS_PREFIX = "processed/predictions/payments/"  # one Parquet file per input file: the Athena table
WORK_PREFIX = "processed/payments-batch/"  # the converted input and the run's summary
QUARANTINE_PREFIX = "quarantine/payments-batch/"
MODEL_PREFIX = "models/payments/current/"  # the labelled-CSV model scored: config.json + xgboost-model.ubj
# a run that fails (no model, a crashed step) still publishes one alert: this subject, and as its message
# {"kind": BATCH_FAILED, "key", "file_digest", "error", "cause"} (stacks/batch.py's PublishFailure state)
BATCH_FAILED = "batch_failed"
FAILURE_SUBJECT = "ReturnGuard batch: a file failed and was not scored (upload it again to retry)"
ID_COLUMN = "transaction_id"  # optional: carried into the predictions and the alert
CLAIM_PREFIX = "payments-batch#"  # the digest's item in the idempotency table

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
MAX_LISTED_PROBLEMS = 100  # the report lists this many and counts all
TOP_ALERT_ROWS = 10
TOP_FACTORS = 3

# The predictions table: one row per input row. The Glue table (stacks/batch.py) and the Parquet the
# engine writes both read this list. Contributions exist for the rows that were explained (every flagged
# row; every row with explain="all").
PREDICTION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("file_digest", "string"),
    ("source_key", "string"),
    ("row", "bigint"),
    (ID_COLUMN, "string"),
    ("score", "double"),
    ("flagged", "boolean"),
    ("threshold", "double"),
    ("model_version", "string"),
    ("scored_at", "string"),
    ("base_value", "double"),
    ("contributions", "map<string,double>"),
    ("top_factors", "string"),
)


class ModelNotPublished(LookupError):
    """No model under the lake's model prefix (MODEL_PREFIX). The lane scores the uploader's own
    labelled-CSV model, which no deploy can ship. Raised before a file is claimed, so the same file uploaded
    again after publishing is scored; the failure alert carries the class name as its `error`."""

    code = "model_not_published"

    def __init__(self, bucket: str, prefix: str, missing: Sequence[str]):
        super().__init__(
            f"no batch model at s3://{bucket}/{prefix} (missing {', '.join(missing)}): publish one with "
            "`returnguard batch publish-model --model-dir DIR --stage STAGE` (docs/payments.md), then upload "
            "the file again"
        )
        self.bucket, self.missing = bucket, tuple(missing)


class BatchFileError(ValueError):
    """A file that cannot be scored; `report` says what was wrong, machine-readably."""

    def __init__(self, report: ValidationReport):
        super().__init__(report.summary())
        self.report = report


@dataclass(frozen=True)
class FileSchema:
    """What a file must hold: the model's features (numbers; empty = missing), and may hold: its label,
    its time column and a transaction id. Any other column is refused (a wrong file, not extra data)."""

    features: tuple[str, ...]
    optional: tuple[str, ...]

    @classmethod
    def from_model_config(cls, config: Mapping[str, Any]) -> FileSchema:
        features = tuple(str(name) for name in config["feature_names"])
        extra = [config.get("label"), (config.get("split") or {}).get("time_column"), ID_COLUMN]
        return cls(features, tuple(dict.fromkeys(str(e) for e in extra if e and e not in features)))

    @property
    def allowed(self) -> tuple[str, ...]:
        return (*self.features, *self.optional)


@dataclass(frozen=True)
class Problem:
    code: str  # empty_file, unsupported_format, unreadable_file, duplicate_columns, missing_column,
    # unexpected_column, malformed_row, not_a_number, infinite_value
    message: str
    row: int | None = None  # 1 = the first data row (CSV: line 2; JSON Lines: line 1; Parquet: row 1)
    column: str | None = None


@dataclass
class ValidationReport:
    """Everything wrong with one file, as the quarantine's report.json."""

    source_key: str
    file_digest: str
    file_format: str | None
    rows_read: int = 0
    problems: list[Problem] = field(default_factory=list)
    problem_counts: dict[str, int] = field(default_factory=dict)

    def add(self, problem: Problem) -> None:
        self.problem_counts[problem.code] = self.problem_counts.get(problem.code, 0) + 1
        if len(self.problems) < MAX_LISTED_PROBLEMS:
            self.problems.append(problem)

    @property
    def ok(self) -> bool:
        return not self.problem_counts

    def summary(self) -> str:
        counts = ", ".join(f"{n} {code}" for code, n in sorted(self.problem_counts.items()))
        return f"{self.source_key}: {counts or 'no problems'}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "source_key": self.source_key,
            "file_digest": self.file_digest,
            "file_format": self.file_format,
            "rows_read": self.rows_read,
            "problem_count": sum(self.problem_counts.values()),
            "problem_counts": dict(sorted(self.problem_counts.items())),
            "problems_listed": len(self.problems),
            "problems": [{k: v for k, v in asdict(p).items() if v is not None} for p in self.problems],
        }


def file_format(key: str) -> str | None:
    """csv, jsonl or parquet from the name's extension (case-insensitive); None for anything else."""
    name = key.rsplit("/", 1)[-1].lower()
    for extension, kind in FORMATS.items():
        if name.endswith(extension):
            return kind
    return None


def check_columns(columns: Sequence[str], schema: FileSchema, report: ValidationReport) -> None:
    """Missing feature columns, columns the model does not know, and repeated names."""
    seen: set[str] = set()
    repeated = sorted({c for c in columns if c in seen or seen.add(c)})  # type: ignore[func-returns-value]
    if repeated:
        report.add(Problem("duplicate_columns", f"repeated column(s): {', '.join(repeated)}"))
    for column in schema.features:
        if column not in seen:
            report.add(
                Problem("missing_column", f"the model's feature {column} is not in the file", column=column)
            )
    for column in columns:
        if column not in schema.allowed:
            report.add(
                Problem(
                    "unexpected_column",
                    f"the model does not use {column} (allowed besides the features: {', '.join(schema.optional)})",
                    column=column,
                )
            )


# --- where things go -----------------------------------------------------------------------------------


def predictions_key(digest: str) -> str:
    return f"{PREDICTIONS_PREFIX}{digest}.parquet"


def converted_key(digest: str) -> str:
    return f"{WORK_PREFIX}{digest}/input.parquet"


def summary_key(digest: str) -> str:
    return f"{WORK_PREFIX}{digest}/summary.json"


def quarantine_keys(digest: str, source_key: str) -> tuple[str, str]:
    """(the quarantined file, its report.json)."""
    name = source_key.rsplit("/", 1)[-1] or "file"
    return f"{QUARANTINE_PREFIX}{digest}/{name}", f"{QUARANTINE_PREFIX}{digest}/report.json"


def route(size_bytes: int, small_file_bytes: int) -> str:
    """'lambda' for a file the validate-and-score function handles within its memory and time, else 'glue'."""
    return "lambda" if size_bytes <= small_file_bytes else "glue"


def console_url(bucket: str, key: str, region: str) -> str:
    return f"https://{region}.console.aws.amazon.com/s3/object/{bucket}?region={region}&prefix={quote(key)}"


# --- explanations and alerts ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Factor:
    feature: str
    value: float | None  # None: missing in the file
    contribution: float  # log-odds this feature added to the row's score


def top_factors(
    contributions: Sequence[float],
    values: Sequence[float | None],
    features: Sequence[str],
    n: int = TOP_FACTORS,
) -> list[Factor]:
    """The `n` features that raised the row's score most (positive contributions, largest first)."""
    ranked = sorted(range(len(features)), key=lambda i: (-contributions[i], i))
    return [
        Factor(features[i], _finite(values[i]), round(float(contributions[i]), 6))
        for i in ranked[:n]
        if contributions[i] > 0
    ]


def _finite(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


@dataclass(frozen=True)
class FlaggedRow:
    row: int
    transaction_id: str | None
    score: float
    factors: tuple[Factor, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "transaction_id": self.transaction_id,
            "score": round(self.score, 6),
            "factors": [asdict(f) for f in self.factors],
        }


@dataclass(frozen=True)
class BatchResult:
    """What scoring one file produced: the alert is built from this."""

    bucket: str
    source_key: str
    file_digest: str
    file_format: str
    rows: int
    flagged: int
    explained: int
    threshold: float
    model_version: str
    predictions_key: str
    top: tuple[FlaggedRow, ...]
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document["top"] = [row.as_dict() for row in self.top]
        return document


def _factor_text(factor: Mapping[str, Any]) -> str:
    value = "missing" if factor["value"] is None else f"{factor['value']:g}"
    return f"{factor['feature']}={value} (+{factor['contribution']:.2f})"


def scored_alert(result: Mapping[str, Any], region: str) -> dict[str, str]:
    """The one SNS message for a scored file: Subject and a JSON Message with one body per protocol
    (MessageStructure=json): e-mail gets text, chat (Amazon Q Developer / Chatbot over HTTPS, the
    `default`) a custom notification, SQS and Lambda subscribers the result as JSON."""
    name = result["source_key"].rsplit("/", 1)[-1]
    share = result["flagged"] / result["rows"] if result["rows"] else 0.0
    subject = f"ReturnGuard batch: {result['flagged']:,} of {result['rows']:,} flagged in {name}"[:100]
    link = console_url(result["bucket"], result["predictions_key"], region)
    location = f"s3://{result['bucket']}/{result['predictions_key']}"
    lines = [
        f"File: s3://{result['bucket']}/{result['source_key']} (sha256 {result['file_digest'][:12]}…)",
        f"Rows scored: {result['rows']:,}; flagged: {result['flagged']:,} ({share:.2%}) at threshold "
        f"{result['threshold']:.4f}, model {result['model_version']}",
        "",
        "Top flagged rows (score, the factors that raised it most):"
        if result["top"]
        else "No row was flagged.",
    ]
    for row in result["top"]:
        who = f" {row['transaction_id']}" if row.get("transaction_id") else ""
        factors = "; ".join(_factor_text(f) for f in row["factors"]) or "-"
        lines.append(f"  row {row['row']}{who}: {row['score']:.3f}  {factors}")
    lines += ["", f"All predictions: {location}", f"Open: {link}"]
    text = "\n".join(lines)
    chat = {
        "version": "1.0",
        "source": "custom",
        "content": {
            "textType": "client-markdown",
            "title": subject,
            "description": "\n".join(f"`{line}`" if line.startswith("  row") else line for line in lines),
        },
        "metadata": {"summary": subject, "eventType": "ReturnGuardBatchScored"},
    }
    machine = json.dumps({"kind": "batch_scored", **result, "predictions_uri": location, "link": link})
    return {"subject": subject, "message": _per_protocol(text, chat, machine)}


def quarantine_alert(
    report: Mapping[str, Any], bucket: str, quarantined_key: str, region: str
) -> dict[str, str]:
    """The one SNS message for a refused file: what was wrong (first problems, counts) and where it is."""
    name = report["source_key"].rsplit("/", 1)[-1]
    subject = f"ReturnGuard batch: {name} refused, nothing scored"[:100]
    report_key = quarantined_key.rsplit("/", 1)[0] + "/report.json"
    counts = ", ".join(f"{n} {code}" for code, n in report["problem_counts"].items())
    lines = [
        f"File: s3://{bucket}/{report['source_key']} (sha256 {report['file_digest'][:12]}…)",
        f"Problems: {counts}. No row of it was scored.",
        "",
    ]
    for problem in report["problems"][:10]:
        where = " ".join(
            part
            for part in (
                f"row {problem['row']}" if "row" in problem else "",
                f"column {problem['column']}" if "column" in problem else "",
            )
            if part
        )
        lines.append(f"  [{problem['code']}] {where + ': ' if where else ''}{problem['message']}")
    lines += [
        "",
        f"Quarantined file: s3://{bucket}/{quarantined_key}",
        f"Report: s3://{bucket}/{report_key}",
        f"Open: {console_url(bucket, report_key, region)}",
    ]
    text = "\n".join(lines)
    chat = {
        "version": "1.0",
        "source": "custom",
        "content": {"textType": "client-markdown", "title": subject, "description": text},
        "metadata": {"summary": subject, "eventType": "ReturnGuardBatchQuarantined"},
    }
    machine = json.dumps(
        {"kind": "batch_quarantined", "bucket": bucket, "quarantined_key": quarantined_key, "report": report}
    )
    return {"subject": subject, "message": _per_protocol(text, chat, machine)}


def _per_protocol(text: str, chat: Mapping[str, Any], machine: str) -> str:
    return json.dumps(
        {
            "default": json.dumps(chat),
            "https": json.dumps(chat),
            "email": text,
            "email-json": machine,
            "sqs": machine,
            "lambda": machine,
        }
    )
