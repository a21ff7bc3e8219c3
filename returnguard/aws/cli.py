"""The `returnguard` command: returnguard.cli with the SageMaker runtime call `invoke` needs in AWS."""

from __future__ import annotations

from typing import Any

from returnguard.cli import main as cli_main


def invoke_endpoint(
    endpoint_name: str, region: str | None, body: bytes, client: Any = None
) -> tuple[int, bytes]:
    """InvokeEndpoint with a JSON body, as seed 001's invoke script does: (HTTP status, answer body).
    A model error (the endpoint's 4xx answer) comes back as its status and body, not an exception."""
    import boto3

    runtime = client or boto3.client("sagemaker-runtime", region_name=region)
    try:
        response = runtime.invoke_endpoint(
            EndpointName=endpoint_name, ContentType="application/json", Accept="application/json", Body=body
        )
    except runtime.exceptions.ModelError as error:
        return int(error.response.get("OriginalStatusCode", 424)), str(
            error.response.get("OriginalMessage", "")
        ).encode()
    return 200, response["Body"].read()


def main(argv: list[str] | None = None) -> int:
    return cli_main(argv, endpoint_invoker=invoke_endpoint)


if __name__ == "__main__":
    raise SystemExit(main())
