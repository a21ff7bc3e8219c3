"""`returnguard batch score FILE` against a local moto server: a good file prints its one alert, the same
file again prints that it was already processed, a bad file is quarantined with exit status 1."""

from __future__ import annotations

import io
import json

import boto3
import pytest
from botocore.stub import Stubber

from batch.engine import CONFIG_FILE, MODEL_FILE, Model
from batch.local import LocalBatch, score_file
from batch.publish import NotAModel, lake_bucket
from local import stack as local_stack
from returnguard import cli
from returnguard.aws import models_cli
from returnguard.aws.models import RegistryError
from returnguard.batch import BATCH_FAILED, FAILURE_SUBJECT, MODEL_PREFIX, ModelNotPublished


@pytest.fixture(scope="module")
def aws():
    # moto's state is per process: names of its own (--prefix), as other tests start local stacks too
    server = local_stack.start(prefix=PREFIX)
    yield server
    server.stop()


PREFIX = "returnguard-batch-cli"


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return cli.main([*argv, "--prefix", PREFIX], out=out), out.getvalue()


def test_batch_score_prints_one_alert_and_a_second_upload_none(aws, payments_model, transactions, tmp_path):
    path = tmp_path / "monday.csv"
    transactions.head(500).to_csv(path, index=False)
    common = ("--model-dir", str(payments_model), "--endpoint-url", aws.endpoint_url)

    code, text = run("batch", "score", str(path), *common)

    assert code == 0, text
    assert text.startswith("Subject: ReturnGuard batch: ") and "of 500 flagged in monday.csv" in text
    assert (
        "Top flagged rows" in text
        and "All predictions: s3://returnguard-batch-cli-lake/processed/predictions/" in text
    )
    assert "(1 alert published to" in text
    flagged = aws.client("dynamodb").scan(TableName=aws.table_names["flagged"])["Count"]

    code, text = run("batch", "score", str(path), *common)

    assert code == 0 and "already processed" in text
    assert aws.client("dynamodb").scan(TableName=aws.table_names["flagged"])["Count"] == flagged


def test_batch_score_of_a_bad_file_exits_1_with_the_quarantine_alert(aws, payments_model, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("Time,V1\n1,x\n")

    code, text = run(
        "batch", "score", str(path), "--model-dir", str(payments_model), "--endpoint-url", aws.endpoint_url
    )

    assert code == 1
    assert "bad.csv refused, nothing scored" in text and "[missing_column]" in text
    assert "quarantine/payments-batch/" in text


def publish(aws, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    where = ["--endpoint-url", aws.endpoint_url, "--region", "us-east-1"]
    return cli.main(["batch", "publish-model", *argv, *where], out=out), out.getvalue()


def model_keys(aws) -> list[str]:
    listed = aws.client("s3").list_objects_v2(Bucket=aws.bucket, Prefix=MODEL_PREFIX)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_publish_model_puts_the_checked_model_where_the_pipeline_reads_it(aws, payments_model):
    # Given a lake with no model yet
    for key in model_keys(aws):
        aws.client("s3").delete_object(Bucket=aws.bucket, Key=key)
    # When the trained folder is published to it
    code, printed = publish(aws, "--model-dir", str(payments_model), "--bucket", aws.bucket)
    # Then the batch function's own read of models/payments/current/ loads that model
    assert code == 0, printed
    store = LocalBatch.attach(aws).store
    loaded = Model.load(store.model_files(MODEL_PREFIX, (CONFIG_FILE, MODEL_FILE)), scorer="trees")
    expected = json.loads((payments_model / CONFIG_FILE).read_text())["model_version"]
    assert loaded.version == expected and f"model {expected} published" in printed


@pytest.mark.parametrize(
    ("lookup", "refusal"),
    [(lake_bucket, NotAModel), (models_cli.lake_bucket, RegistryError)],
    ids=["batch publish-model", "models"],
)
def test_the_stages_lake_is_its_data_stacks_lakebucket_output(lookup, refusal):
    client = boto3.client("cloudformation", region_name="us-east-1")
    stubber = Stubber(client)
    found = {"StackName": "ReturnGuard-dev-Data", "CreationTime": "2026-01-01T00:00:00Z"}
    stubber.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    **found,
                    "StackStatus": "UPDATE_COMPLETE",
                    "Outputs": [{"OutputKey": "LakeBucket", "OutputValue": "lake-1"}],
                }
            ]
        },
        {"StackName": "ReturnGuard-dev-Data"},
    )
    stubber.add_response(
        "describe_stacks",
        {"Stacks": [{**found, "StackStatus": "CREATE_COMPLETE"}]},
        {"StackName": "ReturnGuard-dev-Data"},
    )
    with stubber:
        assert lookup(client, "dev") == "lake-1"
        with pytest.raises(refusal, match="ReturnGuard-dev-Data has no LakeBucket output"):
            lookup(client, "dev")


def test_publish_model_refuses_a_folder_the_pipeline_could_not_score_with(
    aws, payments_model, tmp_path, capsys
):
    for key in model_keys(aws):
        aws.client("s3").delete_object(Bucket=aws.bucket, Key=key)
    order_like = tmp_path / "order-model"  # a model of another lane: no labelled-CSV feature list
    order_like.mkdir()
    (order_like / MODEL_FILE).write_bytes((payments_model / MODEL_FILE).read_bytes())
    (order_like / CONFIG_FILE).write_text(json.dumps({"model_version": "v1", "feature_names": ["a"]}))
    code, _ = publish(aws, "--model-dir", str(order_like), "--bucket", aws.bucket)
    assert code == 2 and "not a labelled-CSV model" in capsys.readouterr().err
    code, _ = publish(aws, "--model-dir", str(tmp_path / "nothing-here"), "--bucket", aws.bucket)
    assert code == 2 and "lacks config.json, xgboost-model.ubj" in capsys.readouterr().err
    assert model_keys(aws) == []  # nothing written


def test_a_local_run_that_fails_releases_the_claim_and_alerts_as_the_state_machine_does(
    aws, payments_model, transactions, tmp_path
):
    # Given the local pipeline with no model in the lake (the lake as `cdk deploy` leaves it)
    local = LocalBatch.attach(aws)
    local.alerts()  # what earlier tests left on the queue
    for key in model_keys(aws):
        aws.client("s3").delete_object(Bucket=aws.bucket, Key=key)
    path = tmp_path / "no-model.csv"
    transactions.head(20).to_csv(path, index=False)
    # When the file is run, the claim step fails with the reason, and nothing is claimed
    with pytest.raises(ModelNotPublished, match="publish-model"):
        score_file(local, path)
    (alert,) = local.alerts()
    assert alert["subject"] == FAILURE_SUBJECT
    assert alert["message"]["kind"] == BATCH_FAILED and alert["message"]["error"] == "ModelNotPublished"
    assert alert["message"]["key"] == f"incoming/batch/{path.name}"
    claims = aws.client("dynamodb").scan(TableName=aws.table_names["idempotency"])["Items"]
    assert not [c for c in claims if c.get("source_key", {}).get("S") == alert["message"]["key"]]

    # Given a published config.json that is not a labelled-CSV model's: the file is claimed, Convert fails
    aws.client("s3").put_object(Bucket=aws.bucket, Key=f"{MODEL_PREFIX}{CONFIG_FILE}", Body=b"{}")
    aws.client("s3").upload_file(str(payments_model / MODEL_FILE), aws.bucket, f"{MODEL_PREFIX}{MODEL_FILE}")
    with pytest.raises(ValueError, match="not a labelled-CSV model"):
        score_file(local, path)
    # Then the claim is given back and one alert names the file by its digest
    (alert,) = local.alerts()
    assert alert["message"]["kind"] == BATCH_FAILED and alert["message"]["error"] == "ValueError"
    assert (
        local.store.dynamodb.get_item(
            TableName=aws.table_names["idempotency"],
            Key={"id": {"S": f"payments-batch#{alert['message']['file_digest']}"}},
        ).get("Item")
        is None
    )
