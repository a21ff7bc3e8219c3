"""Start and stop a champion / challenger experiment on the serving endpoint: a second production variant.

The challenger is a production variant named `challenger` on the same endpoint, with weight 0: SageMaker
sends it no traffic of its own; the score function reaches it by name (TargetVariant) for the orders the
experiment gives it (returnguard.variants: shadow or A-B). On a serverless endpoint the variant costs
nothing while idle; on a realtime one it runs one instance of the champion's type for the experiment's
length. A second endpoint would bill the same instance plus its own configuration and permissions, and
stay up when forgotten; a variant goes away with `stop`, or with the next promotion's config if named so.

Both steps copy the serving config with every setting (returnguard.aws.promotion) and fail closed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from returnguard.aws.promotion import CHALLENGER_VARIANT, PromotionError, _tags, next_endpoint_config

CHALLENGER = CHALLENGER_VARIANT


def with_challenger(
    current: Mapping[str, Any],
    *,
    name: str,
    model_name: str,
    tags: Iterable[Mapping[str, str]],
    accepted: Iterable[str],
) -> dict[str, Any]:
    """CreateEndpointConfig request: `current` plus a weight-0 `challenger` variant serving `model_name`,
    sized like the champion (one instance on a realtime endpoint)."""
    variants = current.get("ProductionVariants", [])
    if len(variants) != 1:
        raise PromotionError(
            "experiment_running"
            if any(v["VariantName"] == CHALLENGER for v in variants)
            else "ambiguous_variant",
            f"endpoint config {current.get('EndpointConfigName')} has {len(variants)} production variants: "
            "stop the running experiment first",
        )
    champion = dict(variants[0])
    request = next_endpoint_config(
        current, name=name, model_name=champion["ModelName"], tags=tags, accepted=accepted
    )
    challenger = {
        key: value
        for key, value in champion.items()
        if key not in ("VariantName", "ModelName", "InitialVariantWeight", "InitialInstanceCount")
    }
    challenger.update({"VariantName": CHALLENGER, "ModelName": model_name, "InitialVariantWeight": 0.0})
    if "InstanceType" in champion:
        challenger["InitialInstanceCount"] = 1
    request["ProductionVariants"] = [*request["ProductionVariants"], challenger]
    return request


def without_challenger(
    current: Mapping[str, Any], *, name: str, tags: Iterable[Mapping[str, str]], accepted: Iterable[str]
) -> dict[str, Any]:
    """CreateEndpointConfig request: `current` without its `challenger` variant."""
    variants = [v for v in current.get("ProductionVariants", []) if v["VariantName"] != CHALLENGER]
    if len(variants) == len(current.get("ProductionVariants", [])):
        raise PromotionError(
            "no_experiment", f"endpoint config {current.get('EndpointConfigName')} has no challenger"
        )
    trimmed = {**current, "ProductionVariants": variants}
    return next_endpoint_config(
        trimmed, name=name, model_name=variants[0]["ModelName"], tags=tags, accepted=accepted
    )


def _switch(sagemaker: Any, endpoint_name: str, build: Any) -> dict[str, str]:
    endpoint = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    if endpoint["EndpointStatus"] != "InService":
        raise PromotionError(
            "endpoint_busy", f"endpoint {endpoint_name} is {endpoint['EndpointStatus']}, not InService"
        )
    current = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    accepted = sagemaker.meta.service_model.operation_model("CreateEndpointConfig").input_shape.members
    request = build(current, tags=_tags(sagemaker, current["EndpointConfigArn"]), accepted=accepted)
    sagemaker.create_endpoint_config(**request)
    sagemaker.update_endpoint(
        EndpointName=endpoint_name,
        EndpointConfigName=request["EndpointConfigName"],
        RetainDeploymentConfig=True,
    )
    return {
        "EndpointConfigName": request["EndpointConfigName"],
        "PreviousEndpointConfigName": current["EndpointConfigName"],
    }


def start(sagemaker: Any, *, endpoint_name: str, config_name: str, model_name: str) -> dict[str, str]:
    """Add the challenger variant serving `model_name` to the endpoint (new config `config_name`)."""
    return _switch(
        sagemaker,
        endpoint_name,
        lambda current, **kw: with_challenger(current, name=config_name, model_name=model_name, **kw),
    )


def stop(sagemaker: Any, *, endpoint_name: str, config_name: str) -> dict[str, str]:
    """Remove the challenger variant (new config `config_name`); the champion serves on, untouched."""
    return _switch(
        sagemaker, endpoint_name, lambda current, **kw: without_challenger(current, name=config_name, **kw)
    )
