"""Model clients: the SageMaker endpoint or the local inference server, same contract.

Both send {"instances": [vector]} (plus `"model": "return"` for the return lane: one endpoint, one
archive carrying both models, training/inference.py) and return a ModelScore; any failure (timeout, connection refused,
HTTP error, malformed answer) raises ModelUnavailable so the caller can fall back to the rules.
"""

from __future__ import annotations

import http.client
import json
import math
import threading
import urllib.parse
from collections.abc import Mapping
from typing import Any

from returnguard.ports import Model, ModelScore, ModelUnavailable, UnavailableReason

__all__ = ["HttpModel", "Model", "ModelScore", "ModelUnavailable", "SageMakerModel", "parse_response"]

READ_TIMEOUT_S = 2.0  # the local inference server; the endpoint's bounds are clients.SAGEMAKER
MAX_ATTEMPTS = 2


ORDER_LANE = "order"


def _payload(vector: Mapping[str, float], lane: str = ORDER_LANE) -> bytes:
    body: dict[str, Any] = {"instances": [dict(vector)]}
    if lane != ORDER_LANE:  # the order lane's requests stay as they were
        body["model"] = lane
    return json.dumps(body).encode("utf-8")


def parse_response(raw: bytes | str) -> ModelScore:
    try:
        body = json.loads(raw)
        prediction = body["predictions"][0]
        score = float(prediction["score"])
        contributions = {str(k): float(v) for k, v in prediction.get("contributions", {}).items()}
        version = str(body.get("model_version", "unknown"))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
        raise ModelUnavailable(f"malformed model response: {type(error).__name__}") from error
    if not (math.isfinite(score) and 0.0 <= score <= 1.0):
        raise ModelUnavailable("model score outside [0, 1]")
    return ModelScore(score, contributions, version)


class HttpModel:
    """The local inference server (`local/inference_server.py`): POST {url}/invocations.

    One kept-alive connection per thread (as boto3 keeps its connection to SageMaker), reopened once
    when the server has closed it; a second failure is ModelUnavailable.
    """

    def __init__(self, url: str, timeout_s: float = READ_TIMEOUT_S, lane: str = ORDER_LANE):
        self.lane = lane
        parts = urllib.parse.urlsplit(url.rstrip("/"))
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"inference URL must be http://host:port, got {url!r}")
        self._host, self._port = parts.hostname, parts.port or 80
        self._path = parts.path + "/invocations"
        self._timeout = timeout_s
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            self._local.connection = connection
        return connection

    def _post(self, body: bytes) -> tuple[int, bytes]:
        connection = self._connection()
        try:
            connection.request(
                "POST",
                self._path,
                body=body,
                headers={"Content-Type": "application/json", "Accept": "application/json"},
            )
            response = connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            self._local.connection = None
            raise

    def score(self, vector: Mapping[str, float]) -> ModelScore:
        body = _payload(vector, self.lane)
        for attempt in range(MAX_ATTEMPTS):
            try:
                status, raw = self._post(body)
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as error:
                if attempt + 1 == MAX_ATTEMPTS:  # a kept-alive connection the server had closed: once more
                    raise ModelUnavailable(f"inference server unreachable: {type(error).__name__}") from error
            except TimeoutError as error:
                raise ModelUnavailable("inference server timed out", "model_timeout") from error
            except (OSError, http.client.HTTPException) as error:
                raise ModelUnavailable(f"inference server unreachable: {type(error).__name__}") from error
        if status != 200:
            raise ModelUnavailable(f"inference server answered HTTP {status}")
        return parse_response(raw)


def sagemaker_config() -> Any:
    from returnguard.aws.clients import SAGEMAKER

    return SAGEMAKER.config()


class SageMakerModel:
    """A SageMaker real-time endpoint. `client` is a boto3 sagemaker-runtime client built with
    `sagemaker_config()` (short timeouts, at most 2 attempts), created once at module load.
    Timeouts (and a request budget too short for another attempt) are `model_timeout`."""

    def __init__(self, client: Any, endpoint_name: str, lane: str = ORDER_LANE, target_variant: str = ""):
        self._client = client
        self._endpoint = endpoint_name
        self.lane = lane
        # a production variant by name (the challenger's); empty: SageMaker routes by the variants' weights
        self._target = {"TargetVariant": target_variant} if target_variant else {}

    def score(self, vector: Mapping[str, float]) -> ModelScore:
        try:
            response = self._client.invoke_endpoint(
                EndpointName=self._endpoint,
                ContentType="application/json",
                Accept="application/json",
                Body=_payload(vector, self.lane),
                **self._target,
            )
            raw = response["Body"].read()
        except Exception as error:  # botocore errors, timeouts, throttling: all mean "no score"
            reason: UnavailableReason = "model_timeout" if _timed_out(error) else "model_error"
            raise ModelUnavailable(f"endpoint failed: {type(error).__name__}", reason) from error
        return parse_response(raw)


def _timed_out(error: Exception) -> bool:
    from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

    from returnguard.aws.clients import BudgetExhausted

    return isinstance(error, (ConnectTimeoutError, ReadTimeoutError, BudgetExhausted, TimeoutError))
