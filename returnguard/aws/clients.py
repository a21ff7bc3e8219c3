"""Bounded AWS calls: per-attempt timeouts, few retries, and a per-request time budget.

Every client the score function makes gets connect/read timeouts and standard-mode retries from
`CallBounds.config()`, so one attempt against a frozen service ends after connect + read seconds.
On top of that a `RequestBudget` (one per execution environment, restarted for every request) refuses
to start an attempt that could not finish before the request's deadline: however many calls a
decision makes and however slowly each answers, the request ends within its budget plus the time
our own code needs. The refusal is `BudgetExhausted`, a BotoCoreError, so callers treat it as the
dependency being unavailable (the handler answers 503, the model falls back, the narrative uses the
template).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError

# Standard-mode backoff before retry i (0-based) is at most min(base * 2**i, 20) s with a base of 1 s
# for throttling errors (50 ms, 25 ms for DynamoDB, otherwise).
_THROTTLING_BACKOFF_BASE_S = 1.0
_MAX_BACKOFF_S = 20.0


@dataclass(frozen=True)
class CallBounds:
    connect_timeout_s: float
    read_timeout_s: float
    max_attempts: int  # in all, the first included

    @property
    def attempt_s(self) -> float:
        """The longest one attempt can take: connecting, then waiting for the answer."""
        return self.connect_timeout_s + self.read_timeout_s

    @property
    def worst_case_s(self) -> float:
        """The longest one call can take with every attempt timing out and the longest backoffs."""
        backoff = sum(
            min(_THROTTLING_BACKOFF_BASE_S * 2**i, _MAX_BACKOFF_S) for i in range(self.max_attempts - 1)
        )
        return self.max_attempts * self.attempt_s + backoff

    def config(self, **extra: Any) -> Config:
        # total_max_attempts counts the first attempt; botocore's max_attempts counts retries only
        return Config(
            connect_timeout=self.connect_timeout_s,
            read_timeout=self.read_timeout_s,
            retries={"total_max_attempts": self.max_attempts, "mode": "standard"},
            **extra,
        )


# DynamoDB answers single-digit milliseconds; a second without an answer means it is not answering.
DYNAMODB = CallBounds(connect_timeout_s=0.5, read_timeout_s=1.0, max_attempts=2)
# The model endpoint, one attempt: a failed call is answered by the fallback model at once, and a
# hung endpoint costs one timeout, after which the circuit breaker skips it (returnguard.circuit).
SAGEMAKER = CallBounds(connect_timeout_s=0.5, read_timeout_s=2.0, max_attempts=1)

# The batch lane (lambdas/batch_file, glue_jobs/batch_score.py): no request budget, but no call may hang
# a run either. S3's read timeout is per socket read, not per transfer, so a large file still streams;
# a run that gives up fails its step, and the state machine releases the claim and alerts.
BATCH_S3 = CallBounds(connect_timeout_s=5.0, read_timeout_s=60.0, max_attempts=4)
BATCH_DYNAMODB = CallBounds(connect_timeout_s=2.0, read_timeout_s=10.0, max_attempts=4)

# The other functions' clients, by the kind of job (`bounded_client`). Each bound's worst case (every
# attempt timing out, the longest backoffs) fits the functions' timeouts (tests/unit/test_lambda_clients.py).
# A stream consumer (stream, archive) fails fast: its event source retries the batch (bisect, bounded
# retries, an on-failure destination), so a frozen table costs seconds, not the function's timeout.
STREAM = CallBounds(connect_timeout_s=1.0, read_timeout_s=3.0, max_attempts=2)
# A console request answers within API Gateway's 29 s (the console function's timeout): a call that
# cannot answer in time leaves room for the 503.
CONSOLE = CallBounds(connect_timeout_s=1.0, read_timeout_s=4.0, max_attempts=2)
# The retraining pipeline's gate and promote steps and the cleanup resource: SageMaker's control plane
# and model archives in S3 (a socket read, not a transfer), within the promote step's 60 s.
CONTROL = CallBounds(connect_timeout_s=3.0, read_timeout_s=10.0, max_attempts=3)
# Once-a-day jobs (drift, the daily summary, the reason clusters, the blocklist sync): patient, and a
# run that gives up is the next day's (or the next schedule's) to do; within the summary's 120 s.
DAILY = CallBounds(connect_timeout_s=5.0, read_timeout_s=20.0, max_attempts=3)


def bounded_client(service: str, bounds: CallBounds, **options: Any) -> Any:
    """A boto3 client whose every call ends within `bounds` (not boto3's 60 s reads and legacy retries)."""
    import boto3

    return boto3.client(service, config=bounds.config(), **options)


# The time a request's AWS calls may take. A hung model still leaves the feature read and the
# decision's two writes an attempt each; the score function's timeout leaves room above it for our
# own code (both asserted in tests/infra/test_stacks.py).
DECISION_BUDGET_S = 7.0
# /v1/health: one attempt at the model, then one at the store
HEALTH_BUDGET_S = SAGEMAKER.attempt_s + DYNAMODB.attempt_s + 0.5


class BudgetExhausted(BotoCoreError):
    fmt = "no time left in this request's budget for another {service} call"


class RequestBudget:
    """A deadline for the AWS calls of the request in progress (one request at a time, as Lambda runs
    an execution environment). Attach it to each client once; `start()` it per request."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._deadline: float | None = None
        self.clients: list[Any] = []  # every attached client (SnapStart closes their connections)

    def start(self, seconds: float) -> None:
        self._deadline = self._clock() + seconds

    def remaining_s(self) -> float | None:
        return None if self._deadline is None else self._deadline - self._clock()

    def attach(self, client: Any) -> Any:
        """Check the budget before each attempt (retries included) the client sends: an attempt
        starts only if its connect + read timeouts (the client's own config) end before the deadline."""
        service = client.meta.service_model.service_name
        attempt_s = float(client.meta.config.connect_timeout) + float(client.meta.config.read_timeout)

        def check(**_: Any) -> None:
            remaining = self.remaining_s()
            if remaining is not None and remaining < attempt_s:
                raise BudgetExhausted(service=service)

        client.meta.events.register("before-send", check)
        self.clients.append(client)
        return client
