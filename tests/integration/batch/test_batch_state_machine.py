"""The batch state machine CDK synthesizes, executed on moto (local.state_machine renders the definition of
the dev template, local.pipeline_run runs each task as the same Python its AWS step runs: the batch_file
Lambda's handler with its template environment, the Glue job's run_job with its default arguments).

Given an upload event: a good file ends scored with predictions, DynamoDB items and one alert; a bad file
ends quarantined with its report and one alert; the same bytes again end at AlreadyProcessed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.pipeline_run import GlueJobs, LambdaFunctions, entered_states, install, run_execution
from local.stack import create_table
from local.state_machine import Resolver, definition_string, render
from returnguard.batch import MODEL_PREFIX, predictions_key
from returnguard.tables import FLAGGED, IDEMPOTENCY

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]
ACCOUNT, REGION = "123456789012", "us-east-1"
LAKE, FLAGGED_TABLE, CLAIMS_TABLE = "lake", "flagged", "idempotency"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:returnguard-dev-batch-file"


@pytest.fixture(scope="module")
def template(dev_templates) -> dict[str, Any]:
    return dev_templates["batch"]  # tests/integration/conftest.py: one synth for the session


def resources(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: r["Properties"] for k, r in template["Resources"].items() if r["Type"] == type_}


@pytest.fixture
def local_aws(template, payments_model) -> Iterator[dict[str, Any]]:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=LAKE)
        for name in ("config.json", "xgboost-model.ubj"):
            s3.upload_file(str(payments_model / name), LAKE, f"{MODEL_PREFIX}{name}")
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_table(dynamodb, FLAGGED, FLAGGED_TABLE)
        create_table(dynamodb, IDEMPOTENCY, CLAIMS_TABLE)
        sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
        topic = sns.create_topic(Name="batch-alerts")["TopicArn"]
        queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

        resolve = Resolver(
            template,
            {
                "LakeBucket": LAKE,
                "FlaggedTable": FLAGGED_TABLE,
                "IdempotencyTable": CLAIMS_TABLE,
                "BatchFileFunction": FUNCTION_ARN,
                "BatchAlerts": topic,
                "SecurityConfiguration": "returnguard-dev-glue",
            },
            ACCOUNT,
            REGION,
        )
        (job,) = resources(template, "AWS::Glue::Job").values()
        boto3.client("glue", region_name=REGION).create_job(
            Name=job["Name"],
            Role=f"arn:aws:iam::{ACCOUNT}:role/batch-glue",
            Command={"Name": "glueetl", "ScriptLocation": resolve.evaluate(job["Command"]["ScriptLocation"])},
            DefaultArguments={k: resolve.evaluate(v) for k, v in job["DefaultArguments"].items()},
        )
        (function,) = [
            f
            for f in resources(template, "AWS::Lambda::Function").values()
            if f.get("Environment", {}).get("Variables", {}).get("RG_FLAGGED_TABLE")
        ]
        env = {k: resolve.evaluate(v) for k, v in function["Environment"]["Variables"].items()}
        steps = {
            "lambda": LambdaFunctions({FUNCTION_ARN: ("batch_file", {**env, "AWS_REGION": REGION})}),
            "glue": GlueJobs(
                spark=lambda: None, scripts={job["Name"]: ROOT / "glue_jobs" / "batch_score.py"}
            ),
        }
        uninstall = install(steps)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        machine = sfn.create_state_machine(
            name="returnguard-dev-batch-scoring",
            definition=json.dumps(render(definition_string(template, "BatchScoring"), resolve)),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/batch",
        )["stateMachineArn"]
        try:
            yield {"s3": s3, "dynamodb": dynamodb, "sqs": sqs, "queue": queue, "sfn": sfn, "machine": machine,
                   "steps": steps, "env": env}  # fmt: skip
        finally:
            uninstall()


def upload_and_run(local_aws, name: str, body: bytes, execution: str) -> dict[str, Any]:
    key = f"incoming/batch/{name}"
    local_aws["s3"].put_object(Bucket=LAKE, Key=key, Body=body)
    event = {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": LAKE}, "object": {"key": key, "size": len(body)}},
    }
    return run_execution(local_aws["sfn"], local_aws["machine"], execution, input=json.dumps(event))


def alerts(local_aws) -> list[dict[str, Any]]:
    found = []
    while (
        messages := local_aws["sqs"]
        .receive_message(QueueUrl=local_aws["queue"], MaxNumberOfMessages=10)
        .get("Messages", [])
    ):
        for message in messages:
            found.append(json.loads(message["Body"]))
            local_aws["sqs"].delete_message(
                QueueUrl=local_aws["queue"], ReceiptHandle=message["ReceiptHandle"]
            )
    return found


def flagged_items(local_aws) -> list[dict[str, Any]]:
    return local_aws["dynamodb"].scan(TableName=FLAGGED_TABLE)["Items"]


def claim_of(local_aws, digest: str) -> dict[str, Any] | None:
    key = {"id": {"S": f"payments-batch#{digest}"}}
    return local_aws["dynamodb"].get_item(TableName=CLAIMS_TABLE, Key=key).get("Item")


def test_a_good_file_is_scored_stored_and_alerted_once_and_its_copy_is_not(local_aws, transactions):
    body = transactions.head(300).to_csv(index=False).encode()

    execution = upload_and_run(local_aws, "tuesday.csv", body, "good-1")

    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    states = entered_states(execution)
    assert states == ["Claim", "File", "SeenBefore", "Route", "Convert", "ConvertResult", "Valid", "Score",
                      "ScoreResult", "PublishAlert", "MarkDone", "Done"]  # fmt: skip
    assert local_aws["steps"]["lambda"].invocations == ["batch_file"] * 3
    (alert,) = alerts(local_aws)
    result = json.loads(alert["Message"])  # the SQS body of the per-protocol message
    assert result["kind"] == "batch_scored" and result["rows"] == 300
    assert alert["Subject"] == f"ReturnGuard batch: {result['flagged']:,} of 300 flagged in tuesday.csv"
    digest = result["file_digest"]
    local_aws["s3"].head_object(Bucket=LAKE, Key=predictions_key(digest))
    items = flagged_items(local_aws)
    assert len(items) == result["flagged"] > 0
    assert {i["row"]["N"] for i in items} >= {str(row["row"]) for row in result["top"]}
    assert result["top"][0]["factors"]
    assert claim_of(local_aws, digest)["status"]["S"] == "done"

    again = upload_and_run(local_aws, "tuesday-resent.csv", body, "good-2")

    assert again["status"] == "SUCCEEDED"
    assert entered_states(again)[-1] == "AlreadyProcessed"
    assert alerts(local_aws) == []
    assert len(flagged_items(local_aws)) == len(items)


def test_a_bad_file_is_quarantined_with_its_report_and_one_alert(local_aws, transactions):
    lines = transactions.head(40).to_csv(index=False).splitlines()
    lines[12] = lines[12].replace(",", ",,", 1)  # row 12: one field too many
    body = "\n".join(lines).encode()

    execution = upload_and_run(local_aws, "broken.csv", body, "bad-1")

    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    states = entered_states(execution)
    assert "Score" not in states and states[-3:] == ["PublishAlert", "MarkDone", "Done"]
    (alert,) = alerts(local_aws)
    message = json.loads(alert["Message"])
    assert message["kind"] == "batch_quarantined" and "refused" in alert["Subject"]
    report = json.loads(
        local_aws["s3"]
        .get_object(Bucket=LAKE, Key=message["quarantined_key"].rsplit("/", 1)[0] + "/report.json")["Body"]
        .read()
    )
    assert report["problems"] == [
        {"code": "malformed_row", "message": "32 field(s) where the header has 31", "row": 12}
    ]
    assert local_aws["s3"].get_object(Bucket=LAKE, Key=message["quarantined_key"])["Body"].read() == body
    assert local_aws["s3"].list_objects_v2(Bucket=LAKE, Prefix="processed/predictions/")["KeyCount"] == 0
    assert flagged_items(local_aws) == []


def test_a_large_file_takes_the_glue_route_to_the_same_outputs(local_aws, transactions):
    # the route's size, lowered for this test: the Glue job runs the same steps in one pass
    local_aws["steps"]["lambda"].functions[FUNCTION_ARN][1]["RG_SMALL_FILE_BYTES"] = "100"
    body = transactions.head(300).to_csv(index=False).encode()

    execution = upload_and_run(local_aws, "big.csv", body, "large-1")

    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    states = entered_states(execution)
    assert states[3:8] == ["Route", "ScoreInGlue", "ReadGlueOutcome", "GlueOutcome", "PublishAlert"]
    assert local_aws["steps"]["glue"].runs == ["returnguard-dev-batch-score"]
    (alert,) = alerts(local_aws)
    result = json.loads(alert["Message"])
    assert result["rows"] == 300 and len(flagged_items(local_aws)) == result["flagged"] > 0


def test_a_run_that_fails_says_why_and_the_same_file_is_scored_once_a_model_is_published(
    local_aws, transactions, payments_model
):
    # Given the lake as `cdk deploy` leaves it: nothing under models/payments/current/
    for name in ("config.json", "xgboost-model.ubj"):
        local_aws["s3"].delete_object(Bucket=LAKE, Key=f"{MODEL_PREFIX}{name}")
    body = transactions.head(30).to_csv(index=False).encode()

    execution = upload_and_run(local_aws, "first.csv", body, "no-model-1")

    # Then the claim step fails with the reason and takes no claim, and one alert names it and the fix
    assert execution["status"] == "FAILED" and execution["error"] == "BatchFailed"
    assert entered_states(execution) == ["Claim", "ClaimFailureAlert", "PublishFailure", "BatchFailed"]
    (alert,) = alerts(local_aws)
    message = json.loads(alert["Message"])
    assert alert["Subject"].startswith("ReturnGuard batch: a file failed")
    assert message["kind"] == "batch_failed" and message["key"] == "incoming/batch/first.csv"
    assert message["error"] == "ModelNotPublished"
    assert "returnguard batch publish-model" in json.loads(message["cause"])["errorMessage"]
    assert local_aws["dynamodb"].scan(TableName=CLAIMS_TABLE)["Items"] == []

    # Given a published config.json that is not a labelled-CSV model's: the Convert step cannot load it
    local_aws["s3"].upload_file(
        str(payments_model / "xgboost-model.ubj"), LAKE, f"{MODEL_PREFIX}xgboost-model.ubj"
    )
    local_aws["s3"].put_object(Bucket=LAKE, Key=f"{MODEL_PREFIX}config.json", Body=b"{}")

    execution = upload_and_run(local_aws, "first.csv", body, "bad-model-1")

    # Then the execution fails after releasing the claim, and the topic gets one alert that says so
    assert execution["status"] == "FAILED" and execution["error"] == "BatchFailed"
    assert entered_states(execution)[-4:] == ["ReleaseClaim", "FailureAlert", "PublishFailure", "BatchFailed"]
    (alert,) = alerts(local_aws)
    message = json.loads(alert["Message"])
    assert message["kind"] == "batch_failed" and message["error"] == "ValueError"
    assert "not a labelled-CSV model" in message["cause"]
    assert claim_of(local_aws, message["file_digest"]) is None  # uploading it again retries it

    # When the model is published and the same bytes are uploaded again, they are scored
    local_aws["s3"].upload_file(str(payments_model / "config.json"), LAKE, f"{MODEL_PREFIX}config.json")
    again = upload_and_run(local_aws, "first.csv", body, "published-1")

    assert again["status"] == "SUCCEEDED", again.get("cause")
    assert "Score" in entered_states(again)
    (scored,) = alerts(local_aws)
    assert json.loads(scored["Message"])["kind"] == "batch_scored"
