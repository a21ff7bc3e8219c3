"""SageMaker inference functions (model_fn, input_fn, predict_fn, output_fn); the local server uses them too.

Input: `application/json` {"instances": [{feature: value, ...}]} or `text/csv` rows in the model's
feature order. The order-risk model's features are the spec's (returnguard/features.py); a model
trained from a labelled CSV (training/tabular.py, config "feature_source": "file") carries its own
feature list, and there a JSON null or an empty CSV cell is a missing value (XGBoost routes it). Output: {"predictions": [{"score", "contributions": {feature: shap}, "base_value"}],
"model_version"}, with exact TreeSHAP from XGBoost (pred_contribs): base_value + sum(contributions)
is the margin and score = sigmoid(margin). Bad input raises InferenceError with an HTTP status and a
stable code. Runs on Python 3.10 (the XGBoost 3.0-5 container).

One archive, both lanes: the order model's files sit at the archive root and the return model's, when
the archive carries one, under `return/` (its own config.json with RETURN_FEATURE_NAMES and
xgboost-model.ubj). A JSON request names the lane with `"model": "return"` beside `instances`; without
it (and for CSV) the order model answers, so one endpoint serves both with no second always-on cost.
The card-payment model rides the same way under `payment/` (`"model": "payment"`).

Seed 001's plain shape: a JSON object of feature values with no `instances` (one transaction, plus
`"model"` to name a lane; no nested lists or objects) is answered `{"fraud_probability": p}` alone,
for callers that only want the probability.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xgboost as xgb

from returnguard.features import FEATURE_NAMES, LANES, FeatureError, validate_vector

MODEL_FILE = "xgboost-model.ubj"
MAX_ROWS = 1000
JSON = "application/json"
CSV = "text/csv"
ORDER_LANE = "order"


class InferenceError(Exception):
    """A request the model can't answer; `status` is the HTTP status, `code` is stable."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            error["field"] = self.field
        return {"error": error}


@dataclass(frozen=True)
class LoadedModel:
    booster: xgb.Booster
    config: dict[str, Any]
    lanes: dict[str, LoadedModel] = field(default_factory=dict)  # the other lanes' models ("return")

    @property
    def version(self) -> str:
        return str(self.config.get("model_version", "unknown"))

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.config["feature_names"])

    @property
    def file_features(self) -> tuple[str, ...] | None:
        """The feature list a labelled-CSV model brought from its file; None: the order spec's."""
        return self.feature_names if self.config.get("feature_source") == "file" else None


@dataclass(frozen=True)
class LaneRows:
    """Rows for another lane's model than the order model (input_fn's answer to `"model": "return"`)."""

    lane: str
    rows: np.ndarray
    plain: bool = False  # seed 001's shape: answer {"fraud_probability": p} only

    def __len__(self) -> int:
        return len(self.rows)


def model_fn(model_dir: str) -> LoadedModel:
    """The order model at the archive root, and every other lane's model found in its folder."""
    model = _load(model_dir, ORDER_LANE)
    for lane in LANES:
        if lane != ORDER_LANE and os.path.isfile(os.path.join(model_dir, lane, "config.json")):
            model.lanes[lane] = _load(os.path.join(model_dir, lane), lane)
    return model


def _load(model_dir: str, lane: str) -> LoadedModel:
    with open(os.path.join(model_dir, "config.json")) as handle:
        config = json.load(handle)
    names = config.get("feature_names")
    spec_names = [f.name for f in LANES[lane]]
    if config.get("feature_source") == "file" and lane == ORDER_LANE:
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise RuntimeError("model config.json has no usable feature_names list")
    elif list(names or []) != spec_names:
        which = "FEATURE_NAMES" if lane == ORDER_LANE else f"{lane} lane's feature names"
        raise RuntimeError(f"model was trained on a different feature list than this code's {which}")
    booster = xgb.Booster()
    booster.load_model(os.path.join(model_dir, MODEL_FILE))
    booster.set_param({"nthread": 1})  # one request per thread; XGBoost threads would only contend
    return LoadedModel(booster, config)


def lane_of(document: Any) -> str:
    """The lane a JSON request names (`"model"`), the order lane when it names none."""
    lane = document.get("model", ORDER_LANE) if isinstance(document, dict) else ORDER_LANE
    if not isinstance(lane, str) or lane not in LANES:
        raise InferenceError(422, "unknown_model", f"model must be one of {', '.join(LANES)}", field="model")
    return lane


def input_fn(
    body: bytes | str, content_type: str, features: Sequence[str] | None = None
) -> np.ndarray | LaneRows:
    """Rows as a float matrix in model order. `features`: a labelled-CSV model's list
    (LoadedModel.file_features); None checks against the order spec (SageMaker's two-argument call).
    A JSON body naming another lane (`"model": "return"`) is checked against that lane's spec and
    comes back as LaneRows for predict_fn to route."""
    names = tuple(features) if features is not None else FEATURE_NAMES
    media = (content_type or "").split(";")[0].strip().lower()
    text = body.decode("utf-8", errors="strict") if isinstance(body, (bytes, bytearray)) else body
    if not text or not text.strip():
        raise InferenceError(400, "empty_body", "request body is empty")
    if media == JSON:
        document = _json_document(text)
        lane = lane_of(document)
        if _plain(document):
            instance = {k: v for k, v in document.items() if k != "model"}
            spec = LANES[lane] if lane != ORDER_LANE or features is None else None
            plain_rows = _json_rows({"instances": [instance]}, features if spec is None else None, spec)
            return LaneRows(lane, np.asarray(plain_rows, dtype=np.float64), plain=True)
        if lane != ORDER_LANE:
            spec = LANES[lane]
            lane_rows = _json_rows(document, None, spec)
            return LaneRows(lane, np.asarray(lane_rows, dtype=np.float64).reshape(len(lane_rows), len(spec)))
        rows = _json_rows(document, features)
    elif media == CSV:
        rows = _csv_rows(text, names, missing_allowed=features is not None)
    else:
        raise InferenceError(415, "unsupported_media_type", f"content type must be {JSON} or {CSV}")
    if len(rows) > MAX_ROWS:
        raise InferenceError(413, "too_many_rows", f"at most {MAX_ROWS} rows per request, got {len(rows)}")
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(names))


def _plain(document: Any) -> bool:
    """Seed 001's shape: one object of feature values (no `instances`, no nested lists or objects)."""
    return (
        isinstance(document, dict)
        and bool(document)
        and "instances" not in document
        and not any(isinstance(value, (list, dict)) for value in document.values())
    )


def _json_document(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        raise InferenceError(400, "malformed_json", f"body is not valid JSON: {error.msg}") from None


def _json_rows(
    document: Any, features: Sequence[str] | None, spec: Sequence[Any] | None = None
) -> list[list[float]]:
    instances = document.get("instances") if isinstance(document, dict) else None
    if not isinstance(instances, list) or not instances:
        raise InferenceError(
            422, "invalid_instances", 'body must be {"instances": [{feature: value}, ...]}', field="instances"
        )
    if len(instances) > MAX_ROWS:
        raise InferenceError(
            413, "too_many_rows", f"at most {MAX_ROWS} rows per request, got {len(instances)}"
        )
    rows = []
    for index, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise InferenceError(
                422, "invalid_instance", f"instance {index} must be an object", field=f"instances[{index}]"
            )
        try:
            if features is not None:
                rows.append(file_vector(instance, features))
            else:
                rows.append(validate_vector(instance) if spec is None else validate_vector(instance, spec))
        except FeatureError as error:
            raise InferenceError(
                422, "invalid_feature", f"instance {index}: {error}", field=error.field
            ) from None
    return rows


def file_vector(instance: dict[str, Any], features: Sequence[str]) -> list[float]:
    """One instance against a labelled-CSV model's features: all present, none unknown, numbers or
    null (missing)."""
    unknown = sorted(set(instance) - set(features))
    if unknown:
        raise FeatureError(f"unknown feature(s): {', '.join(unknown)}", field=unknown[0])
    values: list[float] = []
    for name in features:
        if name not in instance:
            raise FeatureError(f"missing feature: {name}", field=name)
        value = instance[name]
        if value is None:
            values.append(math.nan)
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise FeatureError(f"feature {name} must be a finite number or null", field=name)
        values.append(float(value))
    return values


def _csv_rows(text: str, names: Sequence[str], missing_allowed: bool) -> list[list[float]]:
    rows = []
    for index, record in enumerate(csv.reader(io.StringIO(text))):
        if not record:
            continue
        if len(rows) >= MAX_ROWS:
            raise InferenceError(413, "too_many_rows", f"at most {MAX_ROWS} rows per request")
        if len(record) != len(names):
            raise InferenceError(
                422, "invalid_row", f"row {index} has {len(record)} values, expected {len(names)}"
            )
        try:
            values = [math.nan if missing_allowed and not v.strip() else float(v) for v in record]
        except ValueError:
            raise InferenceError(
                422, "invalid_row", f"row {index} has a value that is not a number"
            ) from None
        if not all(
            math.isfinite(v) or (missing_allowed and not r.strip())
            for v, r in zip(values, record, strict=True)
        ):
            raise InferenceError(422, "invalid_row", f"row {index} has a value that is not finite")
        rows.append(values)
    if not rows:
        raise InferenceError(400, "empty_body", "request body has no rows")
    return rows


def _matrix(data: np.ndarray, model: LoadedModel) -> xgb.DMatrix:
    return xgb.DMatrix(data, feature_names=list(model.feature_names))


def explain_rows(data: np.ndarray, model: LoadedModel) -> tuple[np.ndarray, np.ndarray]:
    """(scores, contributions) for a float matrix in model order: exact TreeSHAP (pred_contribs),
    one column per feature plus the base value last; score = sigmoid(row sum)."""
    matrix = xgb.DMatrix(data, feature_names=list(model.feature_names))
    contributions = model.booster.predict(matrix, pred_contribs=True)
    scores = 1.0 / (1.0 + np.exp(-contributions.sum(axis=1)))
    return scores, contributions


def predict_fn(data: np.ndarray | LaneRows, model: LoadedModel) -> dict[str, Any]:
    if isinstance(data, LaneRows) and data.plain:
        served = model if data.lane == ORDER_LANE else model.lanes.get(data.lane)
        if served is None:
            raise InferenceError(
                404, "model_not_in_archive", f"this model archive carries no {data.lane} model", field="model"
            )
        return {"fraud_probability": float(served.booster.predict(_matrix(data.rows, served))[0])}
    if isinstance(data, LaneRows):
        if data.lane not in model.lanes:
            raise InferenceError(
                404, "model_not_in_archive", f"this model archive carries no {data.lane} model", field="model"
            )
        model, data = model.lanes[data.lane], data.rows
    names = model.feature_names
    scores, contributions = explain_rows(data, model)
    predictions = [
        {
            "score": float(scores[i]),
            "contributions": dict(zip(names, (float(v) for v in contributions[i, :-1]), strict=True)),
            "base_value": float(contributions[i, -1]),
        }
        for i in range(len(data))
    ]
    return {"predictions": predictions, "model_version": model.version}


def output_fn(prediction: dict[str, Any], accept: str = JSON) -> tuple[str, str]:
    media = (accept or JSON).split(";")[0].strip().lower()
    if media not in (JSON, "*/*", ""):
        raise InferenceError(406, "unsupported_accept", f"only {JSON} responses are produced")
    return json.dumps(prediction, separators=(",", ":")), JSON
