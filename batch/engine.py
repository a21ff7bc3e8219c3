"""Validate, convert and score one transactions file (CSV, JSON Lines or Parquet) with the labelled-CSV
model: the numeric core the batch Lambda, the Glue job, `returnguard batch score` and the benchmark share.

pyarrow reads and writes; numpy holds the feature matrix. Scores and exact contributions come from
XGBoost when it is installed (Glue, local, the benchmark) and from `returnguard.trees` (pure Python, the
same numbers to 1e-6) where it is not: the Lambda, whose layers have pyarrow and numpy but no room for
xgboost and scipy. A file with any problem is refused whole with a ValidationReport (BatchFileError).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from returnguard.batch import (
    ID_COLUMN,
    PREDICTION_COLUMNS,
    TOP_ALERT_ROWS,
    BatchFileError,
    BatchResult,
    FileSchema,
    FlaggedRow,
    Problem,
    ValidationReport,
    check_columns,
    file_format,
    predictions_key,
    top_factors,
)
from returnguard.trees import TreeEnsemble, float32

MODEL_FILE = "xgboost-model.ubj"
CONFIG_FILE = "config.json"
# Cells that mean "missing", as pandas reads them (docs/payments.md says which).
NULL_MARKERS = ["", "NA", "N/A", "null", "NULL", "NaN", "nan", "None"]
_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")
_INFINITY = re.compile(r"^\s*[-+]?(inf|infinity)\s*$", re.IGNORECASE)


# --- the model ------------------------------------------------------------------------------------------


class Scorer(Protocol):
    def scores(self, matrix: np.ndarray) -> np.ndarray: ...

    def contributions(self, matrix: np.ndarray) -> np.ndarray: ...


class XGBoostScorer:
    def __init__(self, model: bytes, features: tuple[str, ...]) -> None:
        import xgboost as xgb

        self.xgb, self.features = xgb, list(features)
        self.booster = xgb.Booster()
        self.booster.load_model(bytearray(model))
        self.booster.set_param({"nthread": os.cpu_count() or 1})

    def _matrix(self, matrix: np.ndarray) -> Any:
        return self.xgb.DMatrix(matrix, feature_names=self.features, nthread=os.cpu_count() or 1)

    def scores(self, matrix: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(self._matrix(matrix)), dtype=np.float64)

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        if not len(matrix):
            return np.zeros((0, len(self.features) + 1))
        return np.asarray(self.booster.predict(self._matrix(matrix), pred_contribs=True), dtype=np.float64)


class TreeScorer:
    """returnguard.trees over numpy rows: ~0.3 ms a score and ~50 ms an explanation per row."""

    def __init__(self, model: bytes, features: tuple[str, ...]) -> None:
        self.ensemble = TreeEnsemble.load(model, features)

    def scores(self, matrix: np.ndarray) -> np.ndarray:
        return np.array([self.ensemble.score(row) for row in matrix.astype(np.float32).tolist()])

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        rows = [self.ensemble.contributions(float32(row)) for row in matrix.tolist()]
        return np.array(rows).reshape(len(rows), len(self.ensemble.feature_names) + 1)


@dataclass(frozen=True)
class Model:
    config: dict[str, Any]
    schema: FileSchema
    scorer: Scorer

    @property
    def version(self) -> str:
        return str(self.config.get("model_version", "unknown"))

    @property
    def threshold(self) -> float:
        return float(self.config["threshold"])

    @classmethod
    def load(cls, files: Mapping[str, bytes], scorer: str = "auto") -> Model:
        """From the model folder's config.json and xgboost-model.ubj (bytes). scorer: xgboost, trees or
        auto (xgboost when installed)."""
        config = json.loads(files[CONFIG_FILE])
        if config.get("feature_source") != "file":
            raise ValueError(
                "not a labelled-CSV model (training/tabular.py): config.json lacks feature_source"
            )
        schema = FileSchema.from_model_config(config)
        if scorer == "auto":
            try:
                import xgboost  # noqa: F401

                scorer = "xgboost"
            except ImportError:
                scorer = "trees"
        kind = XGBoostScorer if scorer == "xgboost" else TreeScorer
        return cls(config, schema, kind(files[MODEL_FILE], schema.features))

    @classmethod
    def from_dir(cls, path: str | os.PathLike[str], scorer: str = "auto") -> Model:
        files = {}
        for name in (CONFIG_FILE, MODEL_FILE):
            with open(os.path.join(path, name), "rb") as handle:
                files[name] = handle.read()
        return cls.load(files, scorer)


# --- reading and validating -----------------------------------------------------------------------------


def read_file(data: bytes, source_key: str, digest: str, schema: FileSchema) -> pa.Table:
    """The file as a typed table (features and label/time as float64 with nulls for missing cells, the
    transaction id as text), or BatchFileError with every problem found."""
    kind = file_format(source_key)
    report = ValidationReport(source_key, digest, kind)
    if kind is None:
        report.add(
            Problem(
                "unsupported_format", "the file name must end in .csv, .jsonl, .ndjson, .json or .parquet"
            )
        )
        raise BatchFileError(report)
    if not data.strip():
        report.add(Problem("empty_file", "the file is empty"))
        raise BatchFileError(report)
    reader = {"csv": _read_csv, "jsonl": _read_jsonl, "parquet": _read_parquet}[kind]
    table = reader(data, schema, report)
    if table is not None:
        report.rows_read = table.num_rows
        if table.num_rows == 0 and report.ok:
            report.add(Problem("empty_file", "the file has no rows"))
        _check_finite(table, schema, report)
    if not report.ok or table is None:
        raise BatchFileError(report)
    return table


def _numeric_columns(schema: FileSchema) -> tuple[str, ...]:
    return tuple(c for c in schema.allowed if c != ID_COLUMN)


def _read_csv(data: bytes, schema: FileSchema, report: ValidationReport) -> pa.Table | None:
    first_line = data.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r")
    header = next(csv.reader([first_line]), [])
    check_columns(header, schema, report)
    if not report.ok:
        return None
    numeric = [c for c in header if c in _numeric_columns(schema)]

    def malformed(row: Any) -> str:
        report.add(
            Problem(
                "malformed_row",
                f"{row.actual_columns} field(s) where the header has {row.expected_columns}",
                row=None if row.number is None else row.number - 1,
            )
        )
        return "skip"

    def read(types: Mapping[str, pa.DataType], threads: bool) -> pa.Table:
        return pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(use_threads=threads),
            parse_options=pacsv.ParseOptions(invalid_row_handler=malformed),
            convert_options=pacsv.ConvertOptions(
                column_types=dict(types), null_values=NULL_MARKERS, strings_can_be_null=True
            ),
        )

    # Threads first; a file with rows of the wrong length is read again on one thread, which is when
    # pyarrow knows their line numbers. Those rows are skipped while reading, which would shift the row
    # numbers of any later cell problem: they are reported alone, and the cells once the rows are fixed.
    numbers = {**{c: pa.float64() for c in numeric}, ID_COLUMN: pa.string()}
    texts = {**{c: pa.string() for c in numeric}, ID_COLUMN: pa.string()}
    try:
        table = read(numbers, threads=True)
        if not report.problem_counts:
            return table
        report.problems.clear()
        report.problem_counts.clear()
        read(texts, threads=False)
        return None
    except pa.ArrowInvalid as error:
        if "conversion error" not in str(error):
            report.add(Problem("unreadable_file", f"not a readable CSV: {error}"))
            return None
    # A cell that is not a number: read those columns as text to name every such cell.
    report.problems.clear()
    report.problem_counts.clear()
    text = read(texts, threads=False)
    if report.problem_counts:
        return None
    columns = {}
    for name in text.column_names:
        column = text[name]
        if name in numeric:
            column = _parse_numbers(column, name, report)
        columns[name] = column
    return pa.table(columns)


def _parse_numbers(column: pa.ChunkedArray, name: str, report: ValidationReport) -> pa.ChunkedArray:
    values = column.to_pylist()
    parsed: list[float | None] = []
    for index, value in enumerate(values):
        if value is None:
            parsed.append(None)
        elif _NUMBER.match(value) or _INFINITY.match(value):
            parsed.append(float(value))
        else:
            report.add(Problem("not_a_number", f"{value[:40]!r} is not a number", row=index + 1, column=name))
            parsed.append(None)
    return pa.chunked_array([pa.array(parsed, pa.float64())])


def _read_jsonl(data: bytes, schema: FileSchema, report: ValidationReport) -> pa.Table | None:
    numeric = _numeric_columns(schema)
    columns: dict[str, list[Any]] = {name: [] for name in schema.allowed}
    unexpected: set[str] = set()
    row = 0
    for line_number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        row = line_number
        try:
            record = json.loads(line)
        except ValueError as error:
            report.add(Problem("malformed_row", f"not JSON: {error}", row=row))
            continue
        if not isinstance(record, dict):
            report.add(Problem("malformed_row", "each line must be one JSON object", row=row))
            continue
        for key in record.keys() - set(schema.allowed) - unexpected:
            unexpected.add(key)
            report.add(Problem("unexpected_column", f"the model does not use {key}", row=row, column=key))
        for name in schema.features:
            if name not in record:
                report.add(Problem("malformed_row", f"no {name} (null means missing)", row=row, column=name))
        for name in schema.allowed:
            value = record.get(name)
            if name in numeric and value is not None:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    report.add(
                        Problem("not_a_number", f"{str(value)[:40]!r} is not a number", row=row, column=name)
                    )
                    value = None
                else:
                    value = float(value)
            elif name == ID_COLUMN and value is not None:
                value = str(value)
            columns[name].append(value)
    if not report.ok:
        return None
    present = [n for n in schema.allowed if n in schema.features or any(v is not None for v in columns[n])]
    return pa.table(
        {n: pa.array(columns[n], pa.string() if n == ID_COLUMN else pa.float64()) for n in present}
    )


def _read_parquet(data: bytes, schema: FileSchema, report: ValidationReport) -> pa.Table | None:
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as error:
        report.add(Problem("unreadable_file", f"not a readable Parquet file: {error}"))
        return None
    check_columns(table.column_names, schema, report)
    if not report.ok:
        return None
    columns = {}
    for name in table.column_names:
        column = table[name]
        if name == ID_COLUMN:
            columns[name] = pc.cast(column, pa.string())
        elif any(
            check(column.type)
            for check in (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal, pa.types.is_null)
        ):
            columns[name] = pc.cast(column, pa.float64())
        else:
            report.add(Problem("not_a_number", f"column type is {column.type}, not numbers", column=name))
    return pa.table(columns) if report.ok else None


def _check_finite(table: pa.Table, schema: FileSchema, report: ValidationReport) -> None:
    for name in schema.features:
        if name not in table.column_names:
            continue
        values = table[name].to_numpy(zero_copy_only=False)
        for index in np.flatnonzero(np.isinf(values))[:20]:
            report.add(
                Problem("infinite_value", "infinite values are refused", row=int(index) + 1, column=name)
            )


def to_parquet(table: pa.Table) -> bytes:
    """Snappy Parquet without dictionary pages: the columns are mostly distinct floats, where pyarrow's
    default dictionary attempt made the write 4x slower and the file larger (measured at 200k rows)."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="snappy", use_dictionary=False)
    return sink.getvalue()


# --- scoring --------------------------------------------------------------------------------------------


def prediction_schema() -> pa.Schema:
    types = {
        "string": pa.string(),
        "bigint": pa.int64(),
        "double": pa.float64(),
        "boolean": pa.bool_(),
        "map<string,double>": pa.map_(pa.string(), pa.float64()),
    }
    return pa.schema([(name, types[kind]) for name, kind in PREDICTION_COLUMNS])


@dataclass(frozen=True)
class Scored:
    predictions: pa.Table  # PREDICTION_COLUMNS, one row per input row
    flagged: list[dict[str, Any]]  # one item per flagged row, for DynamoDB
    result: BatchResult


def score(
    table: pa.Table,
    model: Model,
    *,
    bucket: str,
    source_key: str,
    digest: str,
    file_kind: str,
    explain: str = "flagged",
    scored_at: str | None = None,
) -> Scored:
    """Every row's score and flag; exact contributions for the flagged rows (explain="all": every row)."""
    started = time.perf_counter()
    features = model.schema.features
    matrix = np.column_stack([table[f].to_numpy(zero_copy_only=False) for f in features]).astype(np.float64)
    scores = model.scorer.scores(matrix)
    flags = scores >= model.threshold
    explained = np.arange(len(matrix)) if explain == "all" else np.flatnonzero(flags)
    contributions = model.scorer.contributions(matrix[explained])
    ids = table[ID_COLUMN].to_pylist() if ID_COLUMN in table.column_names else [None] * len(matrix)
    scored_at = scored_at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    factors_json: list[str | None] = [None] * len(matrix)
    base = np.full(len(matrix), np.nan)
    flagged_items: list[dict[str, Any]] = []
    top_rows: list[FlaggedRow] = []
    for position, index in enumerate(explained.tolist()):
        values = matrix[index]
        factors = top_factors(contributions[position, :-1], values.tolist(), features)
        factors_json[index] = json.dumps([f.__dict__ for f in factors])
        base[index] = contributions[position, -1]
        if flags[index]:
            row = FlaggedRow(index + 1, ids[index], float(scores[index]), tuple(factors))
            flagged_items.append(row.as_dict())
            top_rows.append(row)
    top_rows.sort(key=lambda r: (-r.score, r.row))

    n, k = len(matrix), len(explained)
    offsets = np.zeros(n + 1, dtype=np.int32)
    counts = np.zeros(n, dtype=np.int32)
    counts[explained] = len(features)
    np.cumsum(counts, out=offsets[1:])
    keys = pa.array(np.tile(np.array(features, dtype=object), k), pa.string())
    items = pa.array(contributions[:, :-1].reshape(-1), pa.float64())
    mask = pa.array(counts == 0)
    contribution_map = pa.MapArray.from_arrays(pa.array(offsets), keys, items, mask=mask)
    predictions = pa.table(
        {
            "file_digest": pa.array([digest] * n, pa.string()),
            "source_key": pa.array([source_key] * n, pa.string()),
            "row": pa.array(np.arange(1, n + 1, dtype=np.int64)),
            ID_COLUMN: pa.array(ids, pa.string()),
            "score": pa.array(scores),
            "flagged": pa.array(flags),
            "threshold": pa.array(np.full(n, model.threshold)),
            "model_version": pa.array([model.version] * n, pa.string()),
            "scored_at": pa.array([scored_at] * n, pa.string()),
            "base_value": pa.array(base, pa.float64(), from_pandas=True),
            "contributions": contribution_map,
            "top_factors": pa.array(factors_json, pa.string()),
        },
        schema=prediction_schema(),
    )
    result = BatchResult(
        bucket=bucket,
        source_key=source_key,
        file_digest=digest,
        file_format=file_kind,
        rows=n,
        flagged=int(flags.sum()),
        explained=k,
        threshold=model.threshold,
        model_version=model.version,
        predictions_key=predictions_key(digest),
        top=tuple(top_rows[:TOP_ALERT_ROWS]),
        seconds=round(time.perf_counter() - started, 3),
    )
    return Scored(predictions, flagged_items, result)
