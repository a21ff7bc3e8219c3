"""The dev Ml stack's cleanup custom resource against moto: what retraining created is gone after Delete."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from local import moto_sagemaker
from local.api_server import LambdaContext

REGION = "us-east-1"
PREFIX = "returnguard-dev"
GROUP = "returnguard-dev-return-abuse-1a2b3c4d"
ROLE = "arn:aws:iam::123456789012:role/sagemaker"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.0-5"


def create_what_retraining_creates(sagemaker, logs) -> None:
    """Two retraining runs of dev, the stack's own endpoint, and prod's resources next to them."""
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    for run in ("run-1", "run-2"):
        name = f"{PREFIX}-{run}"
        container = {"Image": IMAGE, "ModelDataUrl": f"s3://lake/models/artifacts/{name}/model.tar.gz"}
        sagemaker.create_model_package(
            ModelPackageGroupName=GROUP,
            ModelApprovalStatus="Approved",
            InferenceSpecification={
                "Containers": [container],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
        )
        sagemaker.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer=container)
        sagemaker.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": "primary",
                    "ModelName": name,
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                }
            ],
        )
    sagemaker.create_endpoint(EndpointName=f"{PREFIX}-scoring", EndpointConfigName=f"{PREFIX}-run-2")
    sagemaker.create_endpoint(EndpointName=f"{PREFIX}-blue", EndpointConfigName=f"{PREFIX}-run-1")
    # prod's model: another prefix, never touched by dev's cleanup
    sagemaker.create_model(
        ModelName="returnguard-prod-run-9", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE}
    )
    logs.create_log_group(logGroupName="/aws/sagemaker/TrainingJobs")
    for stream in (f"{PREFIX}-run-1/algo-1-1700000000", "returnguard-prod-run-9/algo-1-1700000000"):
        logs.create_log_stream(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream)


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    moto_sagemaker.install()  # moto 5.2 has no DeleteModelPackage / DeleteModelPackageGroup
    with mock_aws():
        yield boto3.client("sagemaker", region_name=REGION), boto3.client("logs", region_name=REGION)


@pytest.fixture
def handler(aws):
    path = Path(__file__).resolve().parents[3] / "lambdas" / "retraining_cleanup" / "handler.py"
    spec = importlib.util.spec_from_file_location("retraining_cleanup_handler_under_test", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def event(request_type: str) -> dict:
    return {
        "RequestType": request_type,
        "ResourceProperties": {
            "Prefix": PREFIX,
            "ModelPackageGroupName": GROUP,
            "KeepEndpoints": [f"{PREFIX}-scoring"],
        },
    }


def test_delete_removes_packages_models_configs_and_endpoints_retraining_created(aws, handler):
    sagemaker, logs = aws
    create_what_retraining_creates(sagemaker, logs)

    result = handler.lambda_handler(event("Delete"), LambdaContext())

    assert result["PhysicalResourceId"] == f"{PREFIX}-retraining-cleanup"
    packages = sagemaker.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]
    assert packages == []
    sagemaker.delete_model_package_group(ModelPackageGroupName=GROUP)  # what failed the dev destroy
    assert sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"] == []
    assert [m["ModelName"] for m in sagemaker.list_models()["Models"]] == ["returnguard-prod-run-9"]
    assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    # the stack's endpoint is CloudFormation's to delete; the extra one retraining made is gone
    assert [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]] == [f"{PREFIX}-scoring"]
    streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs")["logStreams"]
    assert [s["logStreamName"] for s in streams] == ["returnguard-prod-run-9/algo-1-1700000000"]
    assert result["Data"] == {
        "model_packages": 2,
        "endpoints": 1,
        "endpoint_configs": 2,
        "models": 2,
        "stopped_training_jobs": 0,
        "training_log_streams": 1,
    }


def test_the_group_cannot_be_deleted_while_it_holds_packages(aws):
    # the defect the custom resource exists for, as the fake SageMaker reproduces it
    sagemaker, logs = aws
    create_what_retraining_creates(sagemaker, logs)
    with pytest.raises(sagemaker.exceptions.ClientError, match="contains model packages"):
        sagemaker.delete_model_package_group(ModelPackageGroupName=GROUP)


def test_delete_twice_and_with_nothing_to_delete_succeeds(aws, handler):
    sagemaker, logs = aws
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)  # retraining never ran; no log group
    first = handler.lambda_handler(event("Delete"), LambdaContext())
    second = handler.lambda_handler(event("Delete"), LambdaContext())
    assert first["Data"] == second["Data"] == dict.fromkeys(first["Data"], 0)


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_create_and_update_touch_nothing(aws, handler, request_type):
    sagemaker, logs = aws
    create_what_retraining_creates(sagemaker, logs)
    result = handler.lambda_handler(event(request_type), LambdaContext())
    assert result == {"PhysicalResourceId": f"{PREFIX}-retraining-cleanup"}
    assert len(sagemaker.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]) == 2
    assert len(sagemaker.list_models()["Models"]) == 3


def test_a_training_job_still_running_is_stopped_and_only_this_stages(aws):
    # moto keeps every training job Completed and has no StopTrainingJob: the jobs are set running in its
    # backend, and StopTrainingJob is answered (and recorded) by a before-call hook on the client.
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sagemaker.models import sagemaker_backends

    from returnguard.aws.retraining_cleanup import delete_retraining_leftovers

    sagemaker, logs = aws
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    for name in (f"{PREFIX}-run-3", "returnguard-prod-run-3", f"{PREFIX}-run-2"):
        sagemaker.create_training_job(
            TrainingJobName=name,
            AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            RoleArn=ROLE,
            OutputDataConfig={"S3OutputPath": "s3://lake/models/artifacts/"},
            ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 10},
            StoppingCondition={"MaxRuntimeInSeconds": 3600},
        )
    jobs = sagemaker_backends[DEFAULT_ACCOUNT_ID][REGION].training_jobs
    for name in (f"{PREFIX}-run-3", "returnguard-prod-run-3"):
        jobs[name].training_job_status = "InProgress"  # run-2 stays Completed
    stopped: list[str] = []

    def stop(params, **_):  # params: the serialized request; the answer short-circuits the HTTP call
        stopped.append(json.loads(params["body"])["TrainingJobName"])
        return SimpleNamespace(status_code=200, headers={}), {}

    sagemaker.meta.events.register("before-call.sagemaker.StopTrainingJob", stop)

    report = delete_retraining_leftovers(sagemaker, logs, prefix=PREFIX, model_package_group=GROUP)

    assert stopped == report.stopped_training_jobs == [f"{PREFIX}-run-3"]
