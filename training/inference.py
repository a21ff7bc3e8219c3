"""SageMaker inference functions (model_fn, input_fn, predict_fn, output_fn); the local server uses them too.

Input: `application/json` {"instances": [{feature: value, ...}]} or `text/csv` rows in the model's
feature order. Output: {"predictions": [{"score", "contributions": {feature: shap}, "base_value"}],
"model_version"}, with exact TreeSHAP from XGBoost (pred_contribs): base_value + sum(contributions)
is the margin and score = sigmoid(margin). Bad input raises InferenceError with an HTTP status and a
stable code. Runs on Python 3.10 (the XGBoost 3.0-5 container).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import xgboost as xgb

from returnguard.features import FEATURE_NAMES, FeatureError, validate_vector

MODEL_FILE = "xgboost-model.ubj"
MAX_ROWS = 1000
JSON = "application/json"
CSV = "text/csv"


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

    @property
    def version(self) -> str:
        return str(self.config.get("model_version", "unknown"))


def model_fn(model_dir: str) -> LoadedModel:
    with open(os.path.join(model_dir, "config.json")) as handle:
        config = json.load(handle)
    if list(config.get("feature_names", [])) != list(FEATURE_NAMES):
        raise RuntimeError("model was trained on a different feature list than this code's FEATURE_NAMES")
    booster = xgb.Booster()
    booster.load_model(os.path.join(model_dir, MODEL_FILE))
    booster.set_param({"nthread": 1})  # one request per thread; XGBoost threads would only contend
    return LoadedModel(booster, config)


def input_fn(body: bytes | str, content_type: str) -> np.ndarray:
    media = (content_type or "").split(";")[0].strip().lower()
    text = body.decode("utf-8", errors="strict") if isinstance(body, (bytes, bytearray)) else body
    if not text or not text.strip():
        raise InferenceError(400, "empty_body", "request body is empty")
    if media == JSON:
        rows = _json_rows(text)
    elif media == CSV:
        rows = _csv_rows(text)
    else:
        raise InferenceError(415, "unsupported_media_type", f"content type must be {JSON} or {CSV}")
    if len(rows) > MAX_ROWS:
        raise InferenceError(413, "too_many_rows", f"at most {MAX_ROWS} rows per request, got {len(rows)}")
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(FEATURE_NAMES))


def _json_rows(text: str) -> list[list[float]]:
    try:
        document = json.loads(text)
    except ValueError as error:
        raise InferenceError(400, "malformed_json", f"body is not valid JSON: {error.msg}") from None
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
            rows.append(validate_vector(instance))
        except FeatureError as error:
            raise InferenceError(
                422, "invalid_feature", f"instance {index}: {error}", field=error.field
            ) from None
    return rows


def _csv_rows(text: str) -> list[list[float]]:
    rows = []
    for index, record in enumerate(csv.reader(io.StringIO(text))):
        if not record:
            continue
        if len(rows) >= MAX_ROWS:
            raise InferenceError(413, "too_many_rows", f"at most {MAX_ROWS} rows per request")
        if len(record) != len(FEATURE_NAMES):
            raise InferenceError(
                422, "invalid_row", f"row {index} has {len(record)} values, expected {len(FEATURE_NAMES)}"
            )
        try:
            values = [float(v) for v in record]
        except ValueError:
            raise InferenceError(
                422, "invalid_row", f"row {index} has a value that is not a number"
            ) from None
        if not all(math.isfinite(v) for v in values):
            raise InferenceError(422, "invalid_row", f"row {index} has a value that is not finite")
        rows.append(values)
    if not rows:
        raise InferenceError(400, "empty_body", "request body has no rows")
    return rows


def predict_fn(data: np.ndarray, model: LoadedModel) -> dict[str, Any]:
    matrix = xgb.DMatrix(data, feature_names=list(FEATURE_NAMES))
    contributions = model.booster.predict(matrix, pred_contribs=True)
    margins = contributions.sum(axis=1)
    scores = 1.0 / (1.0 + np.exp(-margins))
    predictions = [
        {
            "score": float(scores[i]),
            "contributions": dict(zip(FEATURE_NAMES, (float(v) for v in contributions[i, :-1]), strict=True)),
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
