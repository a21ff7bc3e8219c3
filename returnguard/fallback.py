"""The fallback model: a logistic regression from the same training run as the main model, evaluated
in pure Python inside the score function when the model endpoint cannot answer.

training/train.py exports it as `fallback_model.json` (feature list, standardisation, coefficients,
its own thresholds and time-split metrics). Its per-feature contributions are exact in log-odds:
coefficient * standardised value, summing with the intercept to the score's logit, like the main
model's SHAP values, so the same explanation code reads them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from returnguard.features import FEATURE_NAMES, LANES
from returnguard.ports import ModelScore

KIND = "logistic_regression"
FILE_NAME = "fallback_model.json"


class FallbackModelError(ValueError):
    """The fallback file cannot be used; the message says what is wrong."""


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass(frozen=True)
class FallbackModel:
    model_version: str
    feature_names: tuple[str, ...]
    intercept: float
    coefficients: tuple[float, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    thresholds: dict[str, float]  # medium, high, critical on this model's own score scale
    metrics: dict[str, Any]

    def __post_init__(self) -> None:
        n = len(self.feature_names)
        if not n or not len(self.coefficients) == len(self.means) == len(self.scales) == n:
            raise FallbackModelError("feature_names, coefficients, means and scales must be as long")
        # every name from one lane's spec: a model scores orders or returns (returnguard.features.LANES)
        if not any(set(self.feature_names) <= {f.name for f in spec} for spec in LANES.values()):
            unknown = sorted(set(self.feature_names) - set(FEATURE_NAMES))
            raise FallbackModelError(f"features this code does not compute: {', '.join(unknown)}")
        numbers = (self.intercept, *self.coefficients, *self.means, *self.scales)
        if not all(math.isfinite(v) for v in numbers) or not all(s > 0 for s in self.scales):
            raise FallbackModelError("coefficients must be finite and scales positive")
        if not all(k in self.thresholds for k in ("medium", "high", "critical")):
            raise FallbackModelError("thresholds need medium, high and critical")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FallbackModel:
        if data.get("kind") != KIND:
            raise FallbackModelError(f"kind must be {KIND!r}, got {data.get('kind')!r}")
        try:
            fields: dict[str, Any] = {
                "model_version": str(data["model_version"]),
                "feature_names": tuple(str(n) for n in data["feature_names"]),
                "intercept": float(data["intercept"]),
                "coefficients": tuple(float(v) for v in data["coefficients"]),
                "means": tuple(float(v) for v in data["means"]),
                "scales": tuple(float(v) for v in data["scales"]),
                "thresholds": {k: float(v) for k, v in data["thresholds"].items()},
                "metrics": dict(data.get("metrics", {})),
            }
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise FallbackModelError(f"malformed fallback model: {error!r}") from None
        return cls(**fields)

    @classmethod
    def load(cls, path: str | Path) -> FallbackModel:
        """The model in `path`; FallbackModelError naming the file when it is missing or unusable."""
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as error:  # FallbackModelError is a ValueError
            raise FallbackModelError(f"{path}: {error}") from None

    def score(self, vector: Mapping[str, float]) -> ModelScore:
        """Probability of abuse and exact log-odds contributions; a feature missing from the vector
        sits at its training mean (contribution 0)."""
        contributions: dict[str, float] = {}
        z = self.intercept
        for name, coefficient, mean, scale in zip(
            self.feature_names, self.coefficients, self.means, self.scales, strict=True
        ):
            value = float(vector.get(name, mean))
            contribution = coefficient * (value - mean) / scale
            contributions[name] = contribution
            z += contribution
        return ModelScore(_sigmoid(z), contributions, self.model_version)
