"""UpdateEndpoint (and DeleteModelPackage, DeleteModelPackageGroup) for moto's SageMaker, which (5.2) lacks them.

Behaves as SageMaker documents it, as far as the promotion and its wait loop can see: the endpoint
must be InService and the new config (and its models) must exist, or a ValidationException; the
endpoint is then `Updating` with the new config in `PendingDeploymentSummary` and still names the old
config, until the next DescribeEndpoint finds the deployment done (InService on the new config). A
config whose variant is named in `FAIL_VARIANTS_OF` rolls back instead: InService on the old config
with a `FailureReason`, as SageMaker reports a failed update.
"""

from __future__ import annotations

from typing import Any

from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.models import FakeEndpoint, SageMakerModelBackend
from moto.sagemaker.responses import SageMakerResponse

# Endpoint config names whose deployment fails (tests of the rollback path set this).
FAIL_VARIANTS_OF: set[str] = set()


def _update_endpoint(self: SageMakerModelBackend, endpoint_name: str, endpoint_config_name: str) -> str:
    endpoint = self.endpoints.get(endpoint_name)
    if endpoint is None:
        raise ValidationError(message=f"Could not find endpoint '{endpoint_name}'.")
    if endpoint.endpoint_status != "InService":
        raise ValidationError(
            message=f"Cannot update in-progress endpoint '{endpoint.arn}'."  # SageMaker's wording
        )
    config = self.describe_endpoint_config(endpoint_config_name)  # raises when it does not exist
    self.validate_production_variants(config["ProductionVariants"])
    endpoint.endpoint_status = "Updating"
    endpoint.pending_config = config
    return endpoint.arn


def _finish_pending(endpoint: FakeEndpoint) -> None:
    config = getattr(endpoint, "pending_config", None)
    if config is None:
        return
    endpoint.pending_config = None
    endpoint.endpoint_status = "InService"
    if config["EndpointConfigName"] in FAIL_VARIANTS_OF:
        endpoint.failure_reason = (
            "The primary container for production variant primary did not pass the ping health check."
        )
        return
    endpoint.failure_reason = None
    endpoint.endpoint_config_name = config["EndpointConfigName"]
    endpoint.production_variants = endpoint._process_production_variants(config["ProductionVariants"])
    endpoint.data_capture_config = config.get("DataCaptureConfig")


def _describe_endpoint(self: SageMakerModelBackend, endpoint_name: str) -> dict[str, Any]:
    endpoint = self.endpoints.get(endpoint_name)
    pending = getattr(endpoint, "pending_config", None)
    answer = _original_describe(self, endpoint_name)
    if endpoint is not None and pending is not None:
        # This answer shows the deployment in progress; the next one finds it finished.
        answer["PendingDeploymentSummary"] = {"EndpointConfigName": pending["EndpointConfigName"]}
        answer.pop("PendingConfig", None)
        _finish_pending(endpoint)
    return answer


def _update_endpoint_response(self: SageMakerResponse) -> Any:
    from moto.core.responses import ActionResult

    arn = self.sagemaker_backend.update_endpoint(
        endpoint_name=self._get_param("EndpointName"),
        endpoint_config_name=self._get_param("EndpointConfigName"),
    )
    return ActionResult({"EndpointArn": arn})


def _delete_model_package(self: SageMakerModelBackend, model_package_name: str) -> None:
    arn = self.model_package_name_mapping.get(model_package_name, model_package_name)
    package = self.model_packages.pop(arn, None)
    if package is None:
        raise ValidationError(message=f"Model package {model_package_name} not found")
    for key in [k for k, v in self.model_package_name_mapping.items() if v == arn]:
        del self.model_package_name_mapping[key]


def _delete_model_package_group(self: SageMakerModelBackend, model_package_group_name: str) -> None:
    """Refused while the group holds packages, as SageMaker does (what failed a dev `cdk destroy`)."""
    if model_package_group_name not in self.model_package_groups:
        raise ValidationError(message=f"Model package group {model_package_group_name} not found")
    if any(p.model_package_group_name == model_package_group_name for p in self.model_packages.values()):
        raise ValidationError(
            message=f"Model Package Group {model_package_group_name} contains model packages; delete them first"
        )
    del self.model_package_groups[model_package_group_name]


def _delete_model_package_response(self: SageMakerResponse) -> Any:
    from moto.core.responses import ActionResult

    self.sagemaker_backend.delete_model_package(self._get_param("ModelPackageName"))
    return ActionResult({})


def _delete_model_package_group_response(self: SageMakerResponse) -> Any:
    from moto.core.responses import ActionResult

    self.sagemaker_backend.delete_model_package_group(self._get_param("ModelPackageGroupName"))
    return ActionResult({})


_original_describe = SageMakerModelBackend.describe_endpoint


def install() -> None:
    """Add UpdateEndpoint to moto's SageMaker (idempotent; affects this process only)."""
    if getattr(SageMakerModelBackend, "update_endpoint", None) is _update_endpoint:
        return
    SageMakerModelBackend.update_endpoint = _update_endpoint  # type: ignore[attr-defined]
    SageMakerModelBackend.describe_endpoint = _describe_endpoint  # type: ignore[method-assign]
    SageMakerResponse.update_endpoint = _update_endpoint_response  # type: ignore[attr-defined]
    # DeleteModelPackage and DeleteModelPackageGroup (the dev cleanup custom resource and its test)
    SageMakerModelBackend.delete_model_package = _delete_model_package  # type: ignore[attr-defined]
    SageMakerModelBackend.delete_model_package_group = _delete_model_package_group  # type: ignore[attr-defined]
    SageMakerResponse.delete_model_package = _delete_model_package_response  # type: ignore[attr-defined]
    SageMakerResponse.delete_model_package_group = _delete_model_package_group_response  # type: ignore[attr-defined]
