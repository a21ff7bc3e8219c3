"""The promotion step (lambdas/promote → returnguard.aws.promotion) against moto's SageMaker: the new
endpoint config keeps every setting of the one it replaces, and any error leaves the endpoint alone."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from local import moto_sagemaker
from local.api_server import LambdaContext
from returnguard.aws import serving_profile
from returnguard.aws.promotion import PROMOTED_FROM_TAG, PromotionError, next_endpoint_config, promote
from tests.unit.test_serving_profile import archive, model_files

ENDPOINT = "returnguard-prod-scoring"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ROLE = "arn:aws:iam::123456789012:role/sagemaker"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.0-5"
CAPTURE = {
    "EnableCapture": True,
    "InitialSamplingPercentage": 20,
    "DestinationS3Uri": "s3://lake/models/data-capture",
    "KmsKeyId": KEY_ARN,
    "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
}
REALTIME_VARIANT = {
    "VariantName": "primary",
    "ModelName": "bootstrap",
    "InitialInstanceCount": 2,
    "InstanceType": "ml.c5.large",
    "InitialVariantWeight": 1.0,
    "VolumeSizeInGB": 8,
    "ModelDataDownloadTimeoutInSeconds": 600,
    "ContainerStartupHealthCheckTimeoutInSeconds": 300,
}


@pytest.fixture
def sagemaker() -> Iterator[Any]:
    moto_sagemaker.install()
    with mock_aws():
        client = boto3.client("sagemaker", region_name="us-east-1")
        for name in ("bootstrap", "candidate"):
            client.create_model(
                ModelName=name,
                ExecutionRoleArn=ROLE,
                PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://lake/models/{name}.tar.gz"},
            )
        yield client


def serving(client: Any, **config: Any) -> str:
    """An endpoint serving a config like the Ml stack's prod config (or `config`), tagged as the stack tags it."""
    settings = {
        "ProductionVariants": [REALTIME_VARIANT],
        "DataCaptureConfig": CAPTURE,
        "KmsKeyId": KEY_ARN,
        "AsyncInferenceConfig": {"OutputConfig": {"S3OutputPath": "s3://lake/models/async/"}},
    }
    settings.update(config)
    client.create_endpoint_config(
        EndpointConfigName="EndpointConfig-bootstrap",
        Tags=[{"Key": "project", "Value": "returnguard"}, {"Key": "stage", "Value": "prod"}],
        **{key: value for key, value in settings.items() if value is not None},  # None: not set
    )
    client.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="EndpointConfig-bootstrap")
    return "EndpointConfig-bootstrap"


def described(client: Any, name: str) -> dict[str, Any]:
    answer = client.describe_endpoint_config(EndpointConfigName=name)
    return {
        k: v
        for k, v in answer.items()
        if k not in ("EndpointConfigName", "EndpointConfigArn", "CreationTime", "ResponseMetadata")
    }


def test_promotion_copies_kms_key_data_capture_variant_settings_and_tags(sagemaker):
    old = serving(sagemaker)

    result = promote(sagemaker, endpoint_name=ENDPOINT, config_name="rg-exec-1", model_name="candidate")

    assert result == {"EndpointConfigName": "rg-exec-1", "PreviousEndpointConfigName": old}
    new, before = described(sagemaker, "rg-exec-1"), described(sagemaker, old)
    assert new["KmsKeyId"] == KEY_ARN
    assert new["DataCaptureConfig"] == CAPTURE
    assert new["AsyncInferenceConfig"] == before["AsyncInferenceConfig"]
    assert new["ProductionVariants"] == [{**REALTIME_VARIANT, "ModelName": "candidate"}]
    assert new == {**before, "ProductionVariants": new["ProductionVariants"]}  # nothing else differs
    arn = sagemaker.describe_endpoint_config(EndpointConfigName="rg-exec-1")["EndpointConfigArn"]
    tags = {t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=arn)["Tags"]}
    assert tags == {"project": "returnguard", "stage": "prod", PROMOTED_FROM_TAG: old}
    endpoint = sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointStatus"] == "Updating"
    assert endpoint["PendingDeploymentSummary"]["EndpointConfigName"] == "rg-exec-1"
    assert sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == "rg-exec-1"


def test_serverless_config_is_copied_without_a_key(sagemaker):
    variant = {
        "VariantName": "primary",
        "ModelName": "bootstrap",
        "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
    }
    old = serving(
        sagemaker,
        ProductionVariants=[variant],
        DataCaptureConfig=None,
        KmsKeyId=None,
        AsyncInferenceConfig=None,
    )

    promote(sagemaker, endpoint_name=ENDPOINT, config_name="rg-exec-2", model_name="candidate")

    new = described(sagemaker, "rg-exec-2")
    assert new["ProductionVariants"] == [{**variant, "ModelName": "candidate"}]
    assert "KmsKeyId" not in new
    assert described(sagemaker, old)["ProductionVariants"] == [variant]


def test_a_missing_model_fails_and_leaves_the_endpoint_serving_the_old_config(sagemaker):
    old = serving(sagemaker)

    with pytest.raises(ClientError, match="Could not find model"):
        promote(sagemaker, endpoint_name=ENDPOINT, config_name="rg-exec-3", model_name="never-created")

    endpoint = sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    assert (endpoint["EndpointConfigName"], endpoint["EndpointStatus"]) == (old, "InService")


def test_an_endpoint_that_is_updating_is_not_touched(sagemaker):
    serving(sagemaker)
    promote(sagemaker, endpoint_name=ENDPOINT, config_name="rg-exec-4", model_name="candidate")

    with pytest.raises(PromotionError) as refused:
        promote(sagemaker, endpoint_name=ENDPOINT, config_name="rg-exec-5", model_name="bootstrap")

    assert refused.value.code == "endpoint_busy"
    with pytest.raises(ClientError, match="Could not find endpoint configuration"):
        sagemaker.describe_endpoint_config(EndpointConfigName="rg-exec-5")


def test_a_retried_step_reuses_its_config_and_does_not_update_twice(sagemaker):
    old = serving(sagemaker)
    first = promote(sagemaker, endpoint_name=ENDPOINT, config_name="rg-exec-6", model_name="candidate")

    again = promote(sagemaker, endpoint_name=ENDPOINT, config_name="rg-exec-6", model_name="candidate")

    assert again == first == {"EndpointConfigName": "rg-exec-6", "PreviousEndpointConfigName": old}


def test_an_unknown_endpoint_fails(sagemaker):
    with pytest.raises(ClientError, match="Could not find endpoint"):
        promote(sagemaker, endpoint_name="absent", config_name="rg-exec-7", model_name="candidate")


def test_a_setting_create_cannot_take_is_refused_not_dropped():
    current = {"EndpointConfigName": "old", "ProductionVariants": [REALTIME_VARIANT], "NewSetting": {"On": 1}}

    with pytest.raises(PromotionError) as refused:
        next_endpoint_config(
            current, name="new", model_name="m", tags=[], accepted={"ProductionVariants", "Tags"}
        )

    assert refused.value.code == "uncopyable_setting"
    assert "NewSetting" in str(refused.value)


def test_several_variants_need_the_one_to_promote_named():
    shadow = {**REALTIME_VARIANT, "VariantName": "challenger", "ModelName": "other"}
    current = {"EndpointConfigName": "old", "ProductionVariants": [REALTIME_VARIANT, shadow]}
    accepted = {"ProductionVariants", "Tags"}

    with pytest.raises(PromotionError, match="2 production variants"):
        next_endpoint_config(current, name="new", model_name="m", tags=[], accepted=accepted)
    request = next_endpoint_config(
        current,
        name="new",
        model_name="m",
        tags=[{"Key": "aws:cloudformation:stack-name", "Value": "x"}],
        accepted=accepted,
        variant_name="challenger",
    )

    assert [v["ModelName"] for v in request["ProductionVariants"]] == ["bootstrap", "m"]
    assert request["Tags"] == [{"Key": PROMOTED_FROM_TAG, "Value": "old"}]  # aws: tags cannot be set


def test_the_new_models_profile_is_published_before_the_endpoint_changes_and_none_means_no_change(
    sagemaker,
):
    old = serving(sagemaker)
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="lake")
    s3.put_object(Bucket="lake", Key="models/bootstrap.tar.gz", Body=archive({"metrics.json": {}}))
    s3.put_object(Bucket="lake", Key="models/candidate.tar.gz", Body=archive(model_files("v-cand", 0.1)))

    # An archive without a usable config.json: refused, and the endpoint keeps its config.
    with pytest.raises(PromotionError) as refused:
        promote(
            sagemaker,
            endpoint_name=ENDPOINT,
            config_name="c0",
            model_name="bootstrap",
            s3=s3,
            lake_bucket="lake",
        )
    assert refused.value.code == "profile_unpublished"
    assert sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == old

    promote(
        sagemaker, endpoint_name=ENDPOINT, config_name="c1", model_name="candidate", s3=s3, lake_bucket="lake"
    )

    published = serving_profile.read(s3, "lake", "v-cand")
    assert published["config"]["thresholds"]["medium"] == 0.1
    assert published["fallback"]["model_version"] == "v-cand-fallback"
    assert published["model_data_url"] == "s3://lake/models/candidate.tar.gz"
    # the endpoint answers a return request with the return model's version (r1): found by it too
    assert serving_profile.read(s3, "lake", "r1", "return") == published


def test_handler_reads_the_endpoint_from_its_environment(sagemaker, monkeypatch):
    monkeypatch.setenv("RG_ENDPOINT_NAME", ENDPOINT)
    monkeypatch.setenv("RG_LAKE_BUCKET", "lake")
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="lake")
    s3.put_object(Bucket="lake", Key="models/candidate.tar.gz", Body=archive(model_files("v-cand", 0.1)))
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "returnguard-promote")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "ERROR")
    old = serving(sagemaker)
    path = Path(__file__).resolve().parents[2] / "lambdas" / "promote" / "handler.py"
    spec = importlib.util.spec_from_file_location("promote_handler_under_test", path)
    assert spec and spec.loader
    handler = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = handler
    spec.loader.exec_module(handler)

    result = handler.lambda_handler(
        {"ModelName": "candidate", "EndpointConfigName": "rg-exec-8"}, LambdaContext()
    )

    assert result == {"EndpointConfigName": "rg-exec-8", "PreviousEndpointConfigName": old}
    assert serving_profile.read(s3, "lake", "v-cand")["config"]["model_version"] == "v-cand"
    with pytest.raises(Exception, match="ModelName"):
        handler.lambda_handler({"EndpointConfigName": "rg-exec-9"}, LambdaContext())
