"""`returnguard invoke`: seed 001's invoke script against the local inference server or a SageMaker
endpoint (botocore Stubber: moto's runtime answers canned bodies)."""

from __future__ import annotations

import io
import json

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from local.inference_server import serve
from local.stack import free_port
from returnguard.aws import cli as aws_cli
from returnguard.cli import main
from returnguard.payments import PaymentContext, PaymentStore


@pytest.fixture(scope="module")
def server(payment_lane_model):
    handle = serve(str(payment_lane_model))
    yield handle
    handle.stop()


@pytest.fixture
def features(tmp_path):
    vector = PaymentStore().features(
        PaymentContext("X1", "C1", "fp", "M1", "T1", 1_767_225_600_000, 4_999, "online")
    )
    path = tmp_path / "features.json"
    path.write_text(json.dumps(vector))
    return path


def test_invoke_prints_the_fraud_probability_from_the_local_server(server, features) -> None:
    out = io.StringIO()
    assert (
        main(["invoke", "--file", str(features), "--model", "payment", "--inference-url", server.url], out)
        == 0
    )
    answer = json.loads(out.getvalue())
    assert list(answer) == ["fraud_probability"] and 0.0 < answer["fraud_probability"] < 1.0


def test_invoke_reports_a_refused_request_and_an_unreachable_server(server, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"payment_amount": 3.0}))
    assert main(["invoke", "--file", str(bad), "--model", "payment", "--inference-url", server.url]) == 1
    assert "invalid_feature" in capsys.readouterr().err
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["invoke", "--file", str(bad), "--inference-url", url]) == 2
    assert "cannot reach the inference server" in capsys.readouterr().err


def test_invoke_calls_the_sagemaker_endpoint_in_aws(features) -> None:
    runtime = boto3.client(
        "sagemaker-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    body = json.dumps({"fraud_probability": 0.0186}).encode()
    with Stubber(runtime) as stub:
        stub.add_response(
            "invoke_endpoint",
            {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentType": "application/json"},
            {
                "EndpointName": "returnguard-dev",
                "ContentType": "application/json",
                "Accept": "application/json",
                "Body": json.dumps({**json.loads(features.read_text()), "model": "payment"}).encode(),
            },
        )
        out = io.StringIO()
        status = main(
            ["invoke", "--file", str(features), "--model", "payment", "--endpoint-name", "returnguard-dev"],
            out,
            endpoint_invoker=lambda name, region, data: aws_cli.invoke_endpoint(
                name, region, data, client=runtime
            ),
        )
        stub.assert_no_pending_responses()
    assert status == 0 and json.loads(out.getvalue()) == {"fraud_probability": 0.0186}


def test_without_the_aws_caller_an_endpoint_name_is_a_usage_error(features) -> None:
    with pytest.raises(SystemExit) as usage:
        main(["invoke", "--file", str(features), "--endpoint-name", "returnguard-dev"])
    assert usage.value.code == 2
