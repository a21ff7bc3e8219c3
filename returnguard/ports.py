"""What a decision needs from outside the domain, as protocols: adapters (returnguard/aws/, the local
stack, test fakes) implement them; the domain imports no adapter."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

# Why a model gave no score: a timeout (it may be hung), any other failure, or the circuit breaker
# skipping a model that failed just before (returnguard.circuit).
UnavailableReason = Literal["model_timeout", "model_error", "circuit_open"]


class FeatureStore(Protocol):
    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Items by partition key (absent keys are simply missing from the result)."""
        ...


class ModelUnavailable(Exception):
    """The model could not score this vector; decide without it (degraded mode)."""

    def __init__(self, message: str, reason: UnavailableReason = "model_error"):
        super().__init__(message)
        self.reason: UnavailableReason = reason


@dataclass(frozen=True)
class ModelScore:
    score: float
    contributions: dict[str, float]
    model_version: str


class Model(Protocol):
    def score(self, vector: Mapping[str, float]) -> ModelScore:
        """The score of one feature vector; ModelUnavailable when there is none."""
        ...
