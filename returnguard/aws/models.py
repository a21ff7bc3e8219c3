"""The model registry as `returnguard models` sees it: the retraining pipeline's model package group and
the scoring endpoint, in AWS or in local AWS (the local stack's moto server).

- versions: every registered candidate with its gate decision (ModelApprovalStatus and the numbers the
  gate recorded in CustomerMetadataProperties), and which one the endpoint serves (its model's
  ModelDataUrl is the package's);
- promote: serve a version: a SageMaker model from the package's container, then the same promotion the
  pipeline's promote step makes (returnguard.aws.promotion: a copy of the serving endpoint config with
  the new model). Only an Approved version, unless forced; a forced promotion of a Rejected version
  approves it and records who overrode the gate and why in the package's metadata;
- rollback: back to the endpoint config the serving one was promoted from (its
  `returnguard:promoted-from` tag): the previous model with exactly its previous settings;
- promote and rollback first publish the model's serving profile (thresholds, fallback) to the lake
  (returnguard.aws.serving_profile), which the score function follows;
- compare: two versions' recorded numbers side by side;
- start_experiment / stop_experiment: a version as the endpoint's `challenger` production variant next to
  the champion (returnguard.aws.experiment), which the score function reaches for shadow or A-B
  (returnguard.variants; its mode and share are the deployment's `variants` setting), and its removal.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from returnguard.aws import experiment
from returnguard.aws.promotion import (
    PROMOTED_FROM_TAG,
    ExperimentRunning,
    PromotionError,
    promote,
    publish_profile,
)

METRICS = ("roc_auc", "pr_auc", "alert_rate")


class RegistryError(RuntimeError):
    """A request the registry cannot carry out; `code` is stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ModelVersion:
    version: int
    arn: str
    status: str  # Approved | Rejected | PendingManualApproval
    created: str
    model_data_url: str
    image: str
    environment: dict[str, str]
    metadata: dict[str, str]
    serving: bool = False
    record_url: str | None = None
    challenger: bool = False  # the endpoint's challenger variant runs it (an experiment)

    def metric(self, name: str) -> float | None:
        value = self.metadata.get(f"candidate_{name}")
        try:
            return float(value) if value not in (None, "") else None
        except ValueError:
            return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "status": self.status,
            "serving": self.serving,
            "challenger": self.challenger,
            "created": self.created,
            "model_data_url": self.model_data_url,
            "metrics": {name: self.metric(name) for name in METRICS},
            "metadata": self.metadata,
            "record_url": self.record_url,
        }


@dataclass
class ModelRegistry:
    sagemaker: Any
    s3: Any
    group: str
    endpoint: str
    prefix: str
    # the lake: promote and rollback publish the model's serving profile there (models/serving/) first
    lake_bucket: str
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))

    # --- reading ---------------------------------------------------------------------------------------

    def serving(self) -> dict[str, str]:
        """The endpoint's config, its first production variant's model, and that model's artifact."""
        endpoint = self.sagemaker.describe_endpoint(EndpointName=self.endpoint)
        config = self.sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        variants = config["ProductionVariants"]
        model_name = variants[0]["ModelName"]
        model = self.sagemaker.describe_model(ModelName=model_name)
        challenger = next(
            (v["ModelName"] for v in variants if v["VariantName"] == experiment.CHALLENGER), None
        )
        return {
            "endpoint_status": endpoint["EndpointStatus"],
            "endpoint_config": endpoint["EndpointConfigName"],
            "model_name": model_name,
            "model_data_url": model["PrimaryContainer"]["ModelDataUrl"],
            "execution_role_arn": model["ExecutionRoleArn"],
            "challenger_model_name": challenger or "",
            "challenger_model_data_url": (
                self.sagemaker.describe_model(ModelName=challenger)["PrimaryContainer"]["ModelDataUrl"]
                if challenger
                else ""
            ),
        }

    def versions(self) -> list[ModelVersion]:
        serving = self.serving()
        arns: list[str] = []
        request: dict[str, Any] = {"ModelPackageGroupName": self.group, "SortBy": "CreationTime"}
        while True:
            page = self.sagemaker.list_model_packages(**request)
            arns += [p["ModelPackageArn"] for p in page["ModelPackageSummaryList"]]
            if not page.get("NextToken"):
                break
            request["NextToken"] = page["NextToken"]
        found = [
            self._describe(arn, serving["model_data_url"], serving["challenger_model_data_url"])
            for arn in arns
        ]
        return sorted(found, key=lambda v: v.version)

    def version(self, number: int) -> ModelVersion:
        for candidate in self.versions():
            if candidate.version == number:
                return candidate
        raise RegistryError("unknown_version", f"no version {number} in model package group {self.group}")

    def _describe(self, arn: str, serving_url: str, challenger_url: str = "") -> ModelVersion:
        package = self.sagemaker.describe_model_package(ModelPackageName=arn)
        (container, *_) = package["InferenceSpecification"]["Containers"]
        statistics = (package.get("ModelMetrics") or {}).get("ModelQuality", {}).get("Statistics", {})
        created = package.get("CreationTime")
        return ModelVersion(
            version=int(package["ModelPackageVersion"]),
            arn=arn,
            status=package["ModelApprovalStatus"],
            created=created.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(created, datetime) else str(created),
            model_data_url=container["ModelDataUrl"],
            image=container["Image"],
            environment=dict(container.get("Environment") or {}),
            metadata=dict(package.get("CustomerMetadataProperties") or {}),
            serving=container["ModelDataUrl"] == serving_url,
            record_url=statistics.get("S3Uri"),
            challenger=container["ModelDataUrl"] == challenger_url,
        )

    def gate_record(self, version: ModelVersion) -> dict[str, Any] | None:
        """The gate's record in the lake (ModelMetrics points at it), or None when there is none."""
        if not version.record_url or not version.record_url.startswith("s3://"):
            return None
        bucket, _, key = version.record_url[5:].partition("/")
        try:
            return dict(json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
        except self.s3.exceptions.NoSuchKey:
            return None

    # --- changing what serves --------------------------------------------------------------------------

    def promote(self, number: int, *, force: bool = False, reason: str = "", who: str = "") -> dict[str, str]:
        """Serve version `number`; returns the new and the replaced endpoint config names."""
        target = self.version(number)
        if target.serving:
            raise RegistryError("already_serving", f"version {number} is already what the endpoint serves")
        if target.status != "Approved" and not force:
            reasons = target.metadata.get("gate_reasons", "no gate decision recorded")
            raise RegistryError(
                "not_approved",
                f"version {number} is {target.status} ({reasons}); --force --reason '…' overrides the gate",
            )
        if target.status != "Approved" and not reason.strip():
            raise RegistryError("reason_required", "a forced promotion needs --reason (it is recorded)")
        if self.serving()["challenger_model_name"]:  # before a model is made; promote() checks it too
            error = ExperimentRunning(self.endpoint)
            raise RegistryError(error.code, str(error))
        name = self._create_model(target, "v")
        if target.status != "Approved":
            metadata = {
                **target.metadata,
                "manual_promotion": self.clock().strftime("%Y-%m-%dT%H:%M:%SZ"),
                "manual_promotion_by": (who or "unknown")[:256],
                "manual_promotion_reason": reason.strip()[:1024],
            }
            self.sagemaker.update_model_package(
                ModelPackageArn=target.arn,
                ModelApprovalStatus="Approved",
                ApprovalDescription=f"gate overridden by {who or 'unknown'}: {reason.strip()}"[:1024],
                CustomerMetadataProperties=metadata,
            )
        try:
            return promote(
                self.sagemaker,
                endpoint_name=self.endpoint,
                config_name=name,
                model_name=name,
                s3=self.s3,
                lake_bucket=self.lake_bucket,
            )
        except PromotionError as error:
            raise RegistryError(error.code, str(error)) from None

    def _create_model(self, target: ModelVersion, role: str) -> str:
        """A SageMaker model from the version's container, run by the serving model's role; its name."""
        stamp = self.clock().strftime("%Y%m%d%H%M%S")
        name = f"{self.prefix}-{role}{target.version}-{stamp}"[:63]
        self.sagemaker.create_model(
            ModelName=name,
            ExecutionRoleArn=self.serving()["execution_role_arn"],
            PrimaryContainer={
                "Image": target.image,
                "ModelDataUrl": target.model_data_url,
                "Environment": target.environment,
            },
            Tags=[{"Key": "returnguard:model-package", "Value": target.arn}],
        )
        return name

    def start_experiment(self, number: int) -> dict[str, str]:
        """Run version `number` as the endpoint's challenger variant beside the champion. Any status: in
        shadow it never decides, and in A-B the deployment chose the share; the gate's verdict stays
        in the registry for the comparison report to be read against."""
        target = self.version(number)
        if target.serving:
            raise RegistryError(
                "already_serving", f"version {number} is what the endpoint serves: no experiment"
            )
        name = self._create_model(target, "challenger-v")
        try:  # in A-B the challenger's decisions are mapped with its own thresholds
            publish_profile(self.s3, self.sagemaker, lake_bucket=self.lake_bucket, model_name=name)
            return experiment.start(
                self.sagemaker, endpoint_name=self.endpoint, config_name=name, model_name=name
            )
        except PromotionError as error:
            raise RegistryError(error.code, str(error)) from None

    def stop_experiment(self) -> dict[str, str]:
        """Remove the challenger variant; the champion serves on with every setting of its config."""
        name = f"{self.prefix}-champion-{self.clock().strftime('%Y%m%d%H%M%S')}"[:63]
        try:
            return experiment.stop(self.sagemaker, endpoint_name=self.endpoint, config_name=name)
        except PromotionError as error:
            raise RegistryError(error.code, str(error)) from None

    def rollback(self) -> dict[str, str]:
        """Serve the endpoint config the current one was promoted from, as it was."""
        serving = self.serving()
        if serving["endpoint_status"] != "InService":
            raise RegistryError(
                "endpoint_busy", f"endpoint {self.endpoint} is {serving['endpoint_status']}, not InService"
            )
        config = self.sagemaker.describe_endpoint_config(EndpointConfigName=serving["endpoint_config"])
        tags = self.sagemaker.list_tags(ResourceArn=config["EndpointConfigArn"]).get("Tags", [])
        previous = next((t["Value"] for t in tags if t["Key"] == PROMOTED_FROM_TAG), None)
        if not previous:
            raise RegistryError(
                "nothing_to_roll_back",
                f"endpoint config {serving['endpoint_config']} was not promoted from another",
            )
        back = self.sagemaker.describe_endpoint_config(EndpointConfigName=previous)  # or a clear error
        try:  # the score function maps the old model's scores with its own thresholds again
            publish_profile(
                self.s3,
                self.sagemaker,
                lake_bucket=self.lake_bucket,
                model_name=back["ProductionVariants"][0]["ModelName"],
            )
        except PromotionError as error:
            raise RegistryError(error.code, str(error)) from None
        self.sagemaker.update_endpoint(
            EndpointName=self.endpoint, EndpointConfigName=previous, RetainDeploymentConfig=True
        )
        return {"EndpointConfigName": previous, "PreviousEndpointConfigName": serving["endpoint_config"]}

    def wait_in_service(self, config_name: str, timeout_s: float = 1800, poll_s: float = 30) -> str:
        """Poll until the endpoint is InService on `config_name`; raises if SageMaker rolled it back."""
        deadline = time.monotonic() + timeout_s
        while True:
            endpoint = self.sagemaker.describe_endpoint(EndpointName=self.endpoint)
            status = endpoint["EndpointStatus"]
            if status == "InService" and not endpoint.get("PendingDeploymentSummary"):
                if endpoint["EndpointConfigName"] == config_name:
                    return status
                raise RegistryError(
                    "update_failed",
                    f"endpoint {self.endpoint} is back on {endpoint['EndpointConfigName']}: "
                    f"{endpoint.get('FailureReason') or 'the update was rolled back'}",
                )
            if status == "Failed" or time.monotonic() > deadline:
                raise RegistryError("update_failed", f"endpoint {self.endpoint} is {status}")
            time.sleep(poll_s)


def compare(first: ModelVersion, second: ModelVersion) -> dict[str, Any]:
    """Both versions' recorded numbers and the change from the first to the second. Each was measured
    by its gate on its own run's window; `same_window` says whether those windows are the same."""
    window = ("window_from", "window_to", "window_rows")
    rows = {}
    for name in METRICS:
        a, b = first.metric(name), second.metric(name)
        rows[name] = {"first": a, "second": b, "change": None if a is None or b is None else b - a}
    return {
        "first": first.version,
        "second": second.version,
        "metrics": rows,
        "same_window": all(first.metadata.get(k) == second.metadata.get(k) for k in window),
        "windows": {v.version: {k: v.metadata.get(k) for k in window} for v in (first, second)},
        "status": {first.version: first.status, second.version: second.status},
        "serving": next((v.version for v in (first, second) if v.serving), None),
    }


def find_group(sagemaker: Any, prefix: str) -> str:
    """The stage's model package group (`<prefix>-return-abuse-<suffix>`, named by the Ml stack)."""
    groups = sagemaker.list_model_package_groups(NameContains=f"{prefix}-return-abuse")
    names = [g["ModelPackageGroupName"] for g in groups.get("ModelPackageGroupSummaryList", [])]
    if len(names) != 1:
        raise RegistryError(
            "unknown_group", f"{len(names)} model package groups named {prefix}-return-abuse*: pass --group"
        )
    return names[0]
