"""The model's circuit breaker: one timeout opens it, a probe after the cool-down closes it."""

from __future__ import annotations

import pytest

from returnguard.circuit import CircuitBreaker, GuardedModel
from returnguard.ports import ModelScore, ModelUnavailable, UnavailableReason


class ScriptedModel:
    def __init__(self) -> None:
        self.calls = 0
        self.failure: UnavailableReason | None = None

    def score(self, vector):
        self.calls += 1
        if self.failure:
            raise ModelUnavailable("no", self.failure)
        return ModelScore(0.4, {}, "m1")


def guarded(errors_to_open: int = 3) -> tuple[GuardedModel, ScriptedModel, list[float]]:
    clock = [0.0]
    model = ScriptedModel()
    return GuardedModel(model, CircuitBreaker(10.0, errors_to_open, clock=lambda: clock[0])), model, clock


def reasons(model: GuardedModel, n: int) -> list[str]:
    out = []
    for _ in range(n):
        try:
            model.score({})
            out.append("ok")
        except ModelUnavailable as error:
            out.append(error.reason)
    return out


def test_a_hung_model_costs_one_timeout_then_requests_skip_it() -> None:
    model, inner, clock = guarded()
    inner.failure = "model_timeout"
    assert reasons(model, 4) == ["model_timeout", "circuit_open", "circuit_open", "circuit_open"]
    assert inner.calls == 1 and model.breaker.state == "open"
    clock[0] = 9.9
    assert reasons(model, 1) == ["circuit_open"] and inner.calls == 1


def test_a_probe_after_the_cooldown_closes_the_circuit_when_the_model_is_back() -> None:
    model, inner, clock = guarded()
    inner.failure = "model_timeout"
    reasons(model, 1)
    clock[0] = 10.0
    assert model.breaker.state == "half_open"
    inner.failure = None
    assert reasons(model, 2) == ["ok", "ok"] and model.breaker.state == "closed"


def test_a_failed_probe_reopens_for_another_cooldown() -> None:
    model, inner, clock = guarded()
    inner.failure = "model_timeout"
    reasons(model, 1)
    clock[0] = 10.0
    inner.failure = "model_error"
    assert reasons(model, 2) == ["model_error", "circuit_open"] and inner.calls == 2
    clock[0] = 19.9
    assert model.breaker.state == "open"


def test_only_one_request_probes_a_half_open_circuit() -> None:
    model, inner, clock = guarded()
    model.breaker.failed("model_timeout")
    clock[0] = 10.0
    assert model.breaker.allow() is True and model.breaker.allow() is False


@pytest.mark.parametrize(("errors_to_open", "expected_calls"), [(3, 3), (1, 1)])
def test_fast_errors_open_after_several_in_a_row(errors_to_open, expected_calls) -> None:
    model, inner, _ = guarded(errors_to_open)
    inner.failure = "model_error"
    reasons(model, 5)
    assert inner.calls == expected_calls and model.breaker.state == "open"


def test_a_success_resets_the_error_count() -> None:
    model, inner, _ = guarded()
    inner.failure = "model_error"
    reasons(model, 2)
    inner.failure = None
    reasons(model, 1)
    inner.failure = "model_error"
    reasons(model, 2)
    assert model.breaker.state == "closed" and inner.calls == 5
