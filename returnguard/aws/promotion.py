"""Promote a model onto the serving endpoint: a new endpoint config that copies every setting of the one
the endpoint runs (KMS key, data capture, variants' sizing, shadow variants, tags, ...) with the new model
in place of the old, then UpdateEndpoint.

Fails closed: any SageMaker error, an endpoint that is not InService, or a config this code cannot copy
faithfully raises, and the endpoint keeps serving what it served. Before the endpoint changes, the new
model's serving profile (its thresholds and fallback model, returnguard.aws.serving_profile) is published
to the lake, where the score function reads it when the endpoint first answers with that version. Waiting for InService is the state
machine's job (a Wait/DescribeEndpoint loop), so no Lambda bills while SageMaker deploys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from returnguard.aws import serving_profile

PROMOTED_FROM_TAG = "returnguard:promoted-from"
# Read-only fields DescribeEndpointConfig returns that CreateEndpointConfig does not take.
_DESCRIBE_ONLY = frozenset({"EndpointConfigName", "EndpointConfigArn", "CreationTime", "ResponseMetadata"})


class PromotionError(RuntimeError):
    """The promotion cannot go ahead safely; `code` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# the production variant an experiment runs its candidate in (returnguard.aws.experiment)
CHALLENGER_VARIANT = "challenger"


class ExperimentRunning(PromotionError):
    """The endpoint runs an experiment (a challenger variant): nothing is promoted until it is stopped.
    The retraining state machine catches this error by its name (Lambda reports the class name)."""

    def __init__(self, endpoint_name: str) -> None:
        super().__init__(
            "experiment_running",
            f"endpoint {endpoint_name} runs a challenger: stop the experiment first (models experiment stop)",
        )


def next_endpoint_config(
    current: Mapping[str, Any],
    *,
    name: str,
    model_name: str,
    tags: Iterable[Mapping[str, str]],
    accepted: Iterable[str],
    variant_name: str | None = None,
) -> dict[str, Any]:
    """The CreateEndpointConfig request: `current` (a DescribeEndpointConfig answer) with `model_name` in
    the serving variant (the only one, or `variant_name`), under a new name, with the same tags.

    `accepted` lists CreateEndpointConfig's parameters (from the SDK's service model): a setting the
    description carries that the request cannot take would be silently dropped, so it is refused.
    """
    accepted = set(accepted)
    # An empty setting ({} or None, as emulators answer for one never set) is no setting at all.
    settings = {
        key: value
        for key, value in current.items()
        if key not in _DESCRIBE_ONLY and value not in (None, {}, [])
    }
    dropped = sorted(set(settings) - accepted)
    if dropped:
        raise PromotionError(
            "uncopyable_setting",
            f"endpoint config {current.get('EndpointConfigName')} has {dropped}, "
            "which CreateEndpointConfig does not take: refusing to promote without them",
        )
    variants = [dict(variant) for variant in settings.get("ProductionVariants", [])]
    if variant_name is None and len(variants) != 1:
        raise PromotionError(
            "ambiguous_variant",
            f"endpoint config {current.get('EndpointConfigName')} has {len(variants)} production variants: "
            "name the one to promote into",
        )
    targets = [v for v in variants if variant_name is None or v["VariantName"] == variant_name]
    if not targets:
        raise PromotionError("unknown_variant", f"no production variant named {variant_name!r}")
    targets[0]["ModelName"] = model_name
    # Tags under the reserved aws: prefix are set by AWS and cannot be passed on create.
    kept = [
        dict(tag) for tag in tags if not tag["Key"].startswith("aws:") and tag["Key"] != PROMOTED_FROM_TAG
    ]
    kept.append({"Key": PROMOTED_FROM_TAG, "Value": str(current["EndpointConfigName"])})
    return {**settings, "EndpointConfigName": name, "ProductionVariants": variants, "Tags": kept}


def _tags(sagemaker: Any, arn: str) -> list[dict[str, str]]:
    tags: list[dict[str, str]] = []
    request: dict[str, Any] = {"ResourceArn": arn}
    while True:
        page = sagemaker.list_tags(**request)
        tags.extend(page.get("Tags", []))
        if not page.get("NextToken"):
            return tags
        request["NextToken"] = page["NextToken"]


def _exists(sagemaker: Any, config_name: str) -> dict[str, Any] | None:
    try:
        return sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    except sagemaker.exceptions.ClientError as error:
        if error.response["Error"]["Code"] == "ValidationException" and "Could not find" in str(error):
            return None
        raise


def publish_profile(s3: Any, sagemaker: Any, *, lake_bucket: str, model_name: str) -> str:
    """The model's serving profile in the lake (returnguard.aws.serving_profile); PromotionError when it
    cannot be read or written, so nothing serves a model whose thresholds the score function lacks."""
    try:
        return serving_profile.publish(s3, sagemaker, bucket=lake_bucket, model_name=model_name)
    except Exception as error:  # botocore errors, an archive without a usable config: refuse
        raise PromotionError(
            "profile_unpublished",
            f"the serving profile of {model_name} (thresholds, fallback) could not be published to "
            f"s3://{lake_bucket}/{serving_profile.PROFILES_PREFIX}: {error}",
        ) from None


def promote(
    sagemaker: Any,
    *,
    endpoint_name: str,
    config_name: str,
    model_name: str,
    variant_name: str | None = None,
    s3: Any = None,
    lake_bucket: str = "",
) -> dict[str, str]:
    """Point `endpoint_name` at a copy of its current config serving `model_name`; returns the names of the
    new and the replaced config. With `s3` and `lake_bucket` (the promote function and `returnguard
    models` always pass them) the model's serving profile is published first. Idempotent for a retried step: a config already created under
    `config_name` for this model is reused, and an endpoint already on it is not updated again."""
    endpoint = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    serving = endpoint["EndpointConfigName"]
    pending = endpoint.get("PendingDeploymentSummary", {}).get("EndpointConfigName")
    if config_name in (serving, pending):  # a retried step whose update was already made
        config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
        tags = _tags(sagemaker, config["EndpointConfigArn"])
        previous = next((t["Value"] for t in tags if t["Key"] == PROMOTED_FROM_TAG), "")
        return {"EndpointConfigName": config_name, "PreviousEndpointConfigName": previous}
    if endpoint["EndpointStatus"] != "InService":
        raise PromotionError(
            "endpoint_busy", f"endpoint {endpoint_name} is {endpoint['EndpointStatus']}, not InService"
        )
    current = sagemaker.describe_endpoint_config(EndpointConfigName=serving)
    if any(v["VariantName"] == CHALLENGER_VARIANT for v in current.get("ProductionVariants", [])):
        raise ExperimentRunning(endpoint_name)
    if lake_bucket:
        publish_profile(s3, sagemaker, lake_bucket=lake_bucket, model_name=model_name)
    existing = _exists(sagemaker, config_name)
    if existing is None:
        accepted = sagemaker.meta.service_model.operation_model("CreateEndpointConfig").input_shape.members
        request = next_endpoint_config(
            current,
            name=config_name,
            model_name=model_name,
            tags=_tags(sagemaker, current["EndpointConfigArn"]),
            accepted=accepted,
            variant_name=variant_name,
        )
        sagemaker.create_endpoint_config(**request)
    elif model_name not in {v["ModelName"] for v in existing["ProductionVariants"]}:
        raise PromotionError(
            "config_name_taken", f"endpoint config {config_name} exists and does not serve {model_name}"
        )
    # RetainDeploymentConfig keeps the endpoint's blue/green or rolling settings of the last deployment.
    sagemaker.update_endpoint(
        EndpointName=endpoint_name, EndpointConfigName=config_name, RetainDeploymentConfig=True
    )
    return {"EndpointConfigName": config_name, "PreviousEndpointConfigName": serving}
