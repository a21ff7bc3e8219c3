"""Starting and stopping a challenger variant on the serving endpoint (returnguard.aws.experiment) against
moto's SageMaker: every setting of the serving config is kept, the challenger gets no weighted traffic."""

from __future__ import annotations

import pytest

from returnguard.aws import experiment
from returnguard.aws.promotion import PromotionError
from tests.integration.test_promotion import CAPTURE, ENDPOINT, described, sagemaker, serving  # noqa: F401


def test_start_adds_a_weight_0_challenger_and_stop_removes_it_keeping_every_setting(sagemaker) -> None:  # noqa: F811
    before = described(sagemaker, serving(sagemaker))
    started = experiment.start(sagemaker, endpoint_name=ENDPOINT, config_name="exp-1", model_name="candidate")
    assert started["PreviousEndpointConfigName"] == "EndpointConfig-bootstrap"
    assert sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"] == "Updating"
    assert sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == "exp-1"  # deployed
    during = described(sagemaker, "exp-1")
    champion, challenger = during["ProductionVariants"]
    assert champion == before["ProductionVariants"][0]  # the champion is untouched
    assert challenger["VariantName"] == "challenger" and challenger["ModelName"] == "candidate"
    assert challenger["InitialVariantWeight"] == 0.0  # reached only by TargetVariant
    assert challenger["InitialInstanceCount"] == 1 and challenger["InstanceType"] == champion["InstanceType"]
    assert during["DataCaptureConfig"] == CAPTURE and during["KmsKeyId"] == before["KmsKeyId"]

    with pytest.raises(PromotionError) as running:
        experiment.start(sagemaker, endpoint_name=ENDPOINT, config_name="exp-2", model_name="candidate")
    assert running.value.code == "experiment_running"

    experiment.stop(sagemaker, endpoint_name=ENDPOINT, config_name="exp-1-stopped")
    sagemaker.describe_endpoint(EndpointName=ENDPOINT)  # the update is done
    after = described(sagemaker, "exp-1-stopped")
    assert after["ProductionVariants"] == before["ProductionVariants"]
    assert after["DataCaptureConfig"] == CAPTURE
    with pytest.raises(PromotionError) as none:
        experiment.stop(sagemaker, endpoint_name=ENDPOINT, config_name="exp-1-again")
    assert none.value.code == "no_experiment"


def test_a_serverless_challenger_is_sized_like_the_champion(sagemaker) -> None:  # noqa: F811
    variant = {
        "VariantName": "primary",
        "ModelName": "bootstrap",
        "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
    }
    serving(
        sagemaker,
        ProductionVariants=[variant],
        DataCaptureConfig=None,
        KmsKeyId=None,
        AsyncInferenceConfig=None,
    )
    experiment.start(sagemaker, endpoint_name=ENDPOINT, config_name="exp-s", model_name="candidate")
    challenger = described(sagemaker, "exp-s")["ProductionVariants"][1]
    assert challenger["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    assert "InitialInstanceCount" not in challenger
