"""`make teardown-check` against moto: what a dev deployment and its retraining leave is listed (exit 1);
after a clean destroy only the key pending deletion remains, as a note (exit 0)."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from moto.server import ThreadedMotoServer

from local import moto_sagemaker
from returnguard.aws.teardown import check, main

ROOT = Path(__file__).resolve().parents[3]
REGION = "us-east-1"
STAGE_TAGS = [{"Key": "project", "Value": "returnguard"}, {"Key": "stage", "Value": "dev"}]
ROLE = "arn:aws:iam::123456789012:role/sagemaker"


def deploy_dev_and_retrain(session) -> None:
    """What the dev stacks and one retraining run create, named and tagged as they name and tag it."""
    s3, kms, logs = session.client("s3"), session.client("kms"), session.client("logs")
    s3.create_bucket(Bucket="returnguard-dev-data-lakebucket-abc")
    s3.put_bucket_tagging(Bucket="returnguard-dev-data-lakebucket-abc", Tagging={"TagSet": STAGE_TAGS})
    session.client("dynamodb").create_table(
        TableName="ReturnGuard-dev-Data-Features-XYZ",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        Tags=STAGE_TAGS,
    )
    kinesis = session.client("kinesis")
    kinesis.create_stream(
        StreamName="ReturnGuard-dev-Streaming-Events-QWE", StreamModeDetails={"StreamMode": "ON_DEMAND"}
    )
    kms.create_key(Tags=[{"TagKey": t["Key"], "TagValue": t["Value"]} for t in STAGE_TAGS])
    logs.create_log_group(logGroupName="/aws/lambda/ReturnGuard-dev-Data-CustomS3AutoDeleteObjects-ABC")
    logs.create_log_group(logGroupName="/aws/sagemaker/TrainingJobs")
    logs.create_log_stream(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamName="returnguard-dev-run-1/algo-1-1"
    )
    sagemaker = session.client("sagemaker")
    container = {"Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.0-5"}
    sagemaker.create_model(
        ModelName="returnguard-dev-run-1", ExecutionRoleArn=ROLE, PrimaryContainer=container
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="returnguard-dev-run-1",
        ProductionVariants=[
            {
                "VariantName": "primary",
                "ModelName": "returnguard-dev-run-1",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sagemaker.create_endpoint(
        EndpointName="returnguard-dev-scoring", EndpointConfigName="returnguard-dev-run-1"
    )
    sagemaker.create_model_package_group(ModelPackageGroupName="returnguard-dev-return-abuse-1a2b3c4d")
    # prod, next to it: never dev's business
    s3.create_bucket(Bucket="returnguard-prod-data-lakebucket-def")
    s3.put_bucket_tagging(
        Bucket="returnguard-prod-data-lakebucket-def",
        Tagging={"TagSet": [{"Key": "project", "Value": "returnguard"}, {"Key": "stage", "Value": "prod"}]},
    )
    sagemaker.create_model(
        ModelName="returnguard-prod-run-7", ExecutionRoleArn=ROLE, PrimaryContainer=container
    )


def destroy_dev(session) -> None:
    """What `cdk destroy` and the cleanup custom resource delete; the key is only scheduled for deletion."""
    s3, sagemaker, logs = session.client("s3"), session.client("sagemaker"), session.client("logs")
    s3.delete_bucket(Bucket="returnguard-dev-data-lakebucket-abc")
    session.client("dynamodb").delete_table(TableName="ReturnGuard-dev-Data-Features-XYZ")
    session.client("kinesis").delete_stream(StreamName="ReturnGuard-dev-Streaming-Events-QWE")
    kms = session.client("kms")
    for key in kms.list_keys()["Keys"]:
        kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    logs.delete_log_group(logGroupName="/aws/lambda/ReturnGuard-dev-Data-CustomS3AutoDeleteObjects-ABC")
    logs.delete_log_stream(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamName="returnguard-dev-run-1/algo-1-1"
    )
    sagemaker.delete_endpoint(EndpointName="returnguard-dev-scoring")
    sagemaker.delete_endpoint_config(EndpointConfigName="returnguard-dev-run-1")
    sagemaker.delete_model(ModelName="returnguard-dev-run-1")
    sagemaker.delete_model_package_group(ModelPackageGroupName="returnguard-dev-return-abuse-1a2b3c4d")


@pytest.fixture
def session(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    moto_sagemaker.install()  # DeleteModelPackageGroup, which destroy_dev needs
    with mock_aws():
        yield boto3.session.Session(region_name=REGION)


def test_leftovers_of_dev_are_listed_and_prods_are_not(session):
    deploy_dev_and_retrain(session)
    report = check(session.client, stage="dev", prefix="returnguard-dev")
    listed = {(item.kind, item.name.rsplit(":", 1)[-1].rsplit("/", 1)[-1]) for item in report.leftovers}
    assert ("s3:bucket", "returnguard-dev-data-lakebucket-abc") in listed
    assert ("dynamodb:table", "ReturnGuard-dev-Data-Features-XYZ") in listed
    assert ("kinesis:stream", "ReturnGuard-dev-Streaming-Events-QWE") in listed
    assert ("sagemaker:endpoint", "returnguard-dev-scoring") in listed
    assert ("sagemaker:endpoint-config", "returnguard-dev-run-1") in listed
    assert ("sagemaker:model", "returnguard-dev-run-1") in listed
    assert ("sagemaker:model-package-group", "returnguard-dev-return-abuse-1a2b3c4d") in listed
    assert ("kms:key",) in {(kind,) for kind, _ in listed}  # a live key bills $1/month
    names = {item.name for item in report.leftovers}
    assert "/aws/lambda/ReturnGuard-dev-Data-CustomS3AutoDeleteObjects-ABC" in names
    assert "/aws/sagemaker/TrainingJobs:returnguard-dev-run-1/algo-1-1" in names
    assert not [n for n in names if "prod" in n]
    assert main(["--stage", "dev", "--region", REGION]) == 1


def test_a_clean_destroy_leaves_only_the_key_pending_deletion(session, capsys):
    deploy_dev_and_retrain(session)
    destroy_dev(session)
    report = check(session.client, stage="dev", prefix="returnguard-dev")
    assert report.leftovers == []
    assert [note.kind for note in report.notes] == ["kms:key"]
    assert main(["--stage", "dev", "--region", REGION]) == 0
    assert "nothing of stage dev (prefix returnguard-dev)" in capsys.readouterr().out
    # prod's resources are prod's check
    assert main(["--stage", "prod", "--region", REGION]) == 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_make_teardown_check_exits_non_zero_listing_leftovers_then_zero():
    moto_sagemaker.install()  # the server runs in this process
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
        }
        env.pop("AWS_PROFILE", None)
        session = boto3.session.Session(
            region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        clients = session.client
        deploy_dev_and_retrain(_Endpointed(clients, env["AWS_ENDPOINT_URL"]))

        def make() -> subprocess.CompletedProcess:
            return subprocess.run(
                ["make", "--no-print-directory", "teardown-check", "STAGE=dev"],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
            )  # fmt: skip

        left = make()
        assert left.returncode != 0, left.stdout + left.stderr
        assert (
            "returnguard-dev-scoring" in left.stdout and "ReturnGuard-dev-Streaming-Events-QWE" in left.stdout
        )
        destroy_dev(_Endpointed(clients, env["AWS_ENDPOINT_URL"]))
        clean = make()
        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert "nothing of stage dev" in clean.stdout
    finally:
        server.stop()


class _Endpointed:
    """A session-like object whose clients talk to the moto server."""

    def __init__(self, clients, endpoint_url: str) -> None:
        self._clients, self._endpoint_url = clients, endpoint_url

    def client(self, name: str):
        return self._clients(name, endpoint_url=self._endpoint_url)
