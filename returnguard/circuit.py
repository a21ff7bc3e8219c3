"""A circuit breaker in front of the model, one per execution environment: a hung or failing endpoint
costs one timeout (or a few fast errors), then requests go straight to the fallback until a probe
after the cool-down finds the endpoint back.

closed     every request calls the model; a timeout opens the circuit at once, other errors after
           `errors_to_open` in a row.
open       no call: ModelUnavailable("circuit_open") until `cooldown_s` has passed.
half_open  one request probes the model (others keep skipping it): success closes, failure reopens.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Literal

from returnguard.ports import Model, ModelScore, ModelUnavailable, UnavailableReason

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(
        self, cooldown_s: float = 30.0, errors_to_open: int = 3, clock: Callable[[], float] = time.monotonic
    ):
        self.cooldown_s = cooldown_s
        self.errors_to_open = errors_to_open
        self._clock = clock
        self._lock = threading.Lock()
        self._errors = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> State:
        with self._lock:
            return self._state()

    def _state(self) -> State:
        if self._opened_at is None:
            return "closed"
        return "open" if self._clock() - self._opened_at < self.cooldown_s else "half_open"

    def allow(self) -> bool:
        """May this request call the model? In half_open only the first caller may (the probe)."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return True
            if state == "half_open" and not self._probing:
                self._probing = True
                return True
            return False

    def succeeded(self) -> None:
        with self._lock:
            self._errors, self._opened_at, self._probing = 0, None, False

    def failed(self, reason: UnavailableReason) -> None:
        with self._lock:
            self._errors += 1
            if self._probing or reason == "model_timeout" or self._errors >= self.errors_to_open:
                self._opened_at = self._clock()
            self._probing = False


class GuardedModel:
    """A Model behind a CircuitBreaker (itself a Model: the domain sees no difference)."""

    def __init__(self, model: Model, breaker: CircuitBreaker):
        self.model = model
        self.breaker = breaker

    def score(self, vector: Mapping[str, float]) -> ModelScore:
        if not self.breaker.allow():
            raise ModelUnavailable("the model failed recently; skipped until the next probe", "circuit_open")
        try:
            result = self.model.score(vector)
        except ModelUnavailable as error:
            self.breaker.failed(error.reason)
            raise
        except Exception:  # an adapter bug must not leave a probe pending (the circuit stuck open)
            self.breaker.failed("model_error")
            raise
        self.breaker.succeeded()
        return result
