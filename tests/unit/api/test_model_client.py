import io
import json
from typing import Any

import boto3
import pytest

from returnguard.aws.model_client import (
    ModelUnavailable,
    SageMakerModel,
    parse_response,
    sagemaker_config,
)

GOOD = {
    "predictions": [{"score": 0.42, "contributions": {"payment_is_cod": 0.3}, "base_value": -1.0}],
    "model_version": "m7",
}


class FakeRuntime:
    def __init__(self, body: Any = None, error: Exception | None = None):
        self.body, self.error, self.calls = body, error, []

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.error:
            raise self.error
        return {"Body": io.BytesIO(json.dumps(self.body).encode())}


def test_sagemaker_model_sends_instances_and_parses() -> None:
    runtime = FakeRuntime(GOOD)
    result = SageMakerModel(runtime, "ep").score({"order_amount": 10.0})
    assert (result.score, result.model_version, result.contributions) == (0.42, "m7", {"payment_is_cod": 0.3})
    call = runtime.calls[0]
    assert call["EndpointName"] == "ep" and json.loads(call["Body"]) == {
        "instances": [{"order_amount": 10.0}]
    }


@pytest.mark.parametrize(
    "runtime",
    [
        FakeRuntime(error=TimeoutError("read timeout")),
        FakeRuntime({"predictions": []}),
        FakeRuntime({"predictions": [{"score": 1.5}]}),
        FakeRuntime({"error": {"code": "x"}}),
    ],
)
def test_every_failure_is_model_unavailable(runtime: FakeRuntime) -> None:
    with pytest.raises(ModelUnavailable) as raised:
        SageMakerModel(runtime, "ep").score({})
    expected = "model_timeout" if isinstance(runtime.error, TimeoutError) else "model_error"
    assert raised.value.reason == expected


def test_short_timeouts_and_one_attempt() -> None:
    # a failed call is answered by the fallback model at once; retrying would double a hung call's cost
    client = boto3.client("sagemaker-runtime", region_name="us-east-1", config=sagemaker_config())
    assert client.meta.config.connect_timeout <= 1 and client.meta.config.read_timeout <= 2
    # one attempt in all: botocore's `max_attempts` counts retries, so 1 there was two calls
    assert client.meta.config.retries["total_max_attempts"] == 1


def test_parse_rejects_garbage() -> None:
    with pytest.raises(ModelUnavailable):
        parse_response(b"<html>")
