"""What the retraining state machine created outside CloudFormation, deleted when a dev stack is destroyed.

The state machine registers model packages in the stack's group and creates models, endpoint configs (and
training jobs) named `<prefix>-<execution name>`. CloudFormation knows none of them: a group with packages
cannot be deleted (the dev destroy failed), and the rest stayed behind. The `Ml` stack's cleanup custom
resource calls `delete_retraining_leftovers` on Delete, after the endpoint is gone and before the group is
deleted. Names are matched on `<prefix>-` (the stage's prefix is unique in the account and region), and the
stack's own endpoint is never touched here: CloudFormation deletes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"  # one group for every training job of the region


@dataclass
class CleanupReport:
    model_packages: list[str] = field(default_factory=list)
    endpoints: list[str] = field(default_factory=list)
    endpoint_configs: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    stopped_training_jobs: list[str] = field(default_factory=list)
    training_log_streams: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {name: len(values) for name, values in self.__dict__.items()}


def delete_retraining_leftovers(
    sagemaker: Any,
    logs: Any,
    *,
    prefix: str,
    model_package_group: str,
    keep_endpoints: tuple[str, ...] = (),
) -> CleanupReport:
    """Delete the group's model packages and every `<prefix>-*` endpoint (but `keep_endpoints`), endpoint
    config and model; stop `<prefix>-*` training jobs still running; delete their log streams."""
    report = CleanupReport()
    for package in _pages(
        sagemaker, "list_model_packages", "ModelPackageSummaryList", ModelPackageGroupName=model_package_group
    ):
        arn = package["ModelPackageArn"]
        sagemaker.delete_model_package(ModelPackageName=arn)
        report.model_packages.append(arn)

    for endpoint in _named(sagemaker, "list_endpoints", "Endpoints", "EndpointName", prefix):
        if endpoint not in keep_endpoints:
            sagemaker.delete_endpoint(EndpointName=endpoint)
            report.endpoints.append(endpoint)
    for config in _named(sagemaker, "list_endpoint_configs", "EndpointConfigs", "EndpointConfigName", prefix):
        sagemaker.delete_endpoint_config(EndpointConfigName=config)
        report.endpoint_configs.append(config)
    for model in _named(sagemaker, "list_models", "Models", "ModelName", prefix):
        sagemaker.delete_model(ModelName=model)
        report.models.append(model)

    for job in _pages(
        sagemaker,
        "list_training_jobs",
        "TrainingJobSummaries",
        NameContains=prefix,
        StatusEquals="InProgress",
    ):
        if job["TrainingJobName"].startswith(f"{prefix}-"):
            sagemaker.stop_training_job(TrainingJobName=job["TrainingJobName"])
            report.stopped_training_jobs.append(job["TrainingJobName"])

    try:
        streams = list(
            _pages(
                logs,
                "describe_log_streams",
                "logStreams",
                logGroupName=TRAINING_LOG_GROUP,
                logStreamNamePrefix=f"{prefix}-",
            )
        )
    except logs.exceptions.ResourceNotFoundException:
        streams = []  # no training job ever ran in this region
    for stream in streams:
        logs.delete_log_stream(logGroupName=TRAINING_LOG_GROUP, logStreamName=stream["logStreamName"])
        report.training_log_streams.append(stream["logStreamName"])
    return report


def _named(client: Any, operation: str, key: str, name_key: str, prefix: str) -> Iterator[str]:
    """Names starting with `<prefix>-` (NameContains narrows the listing; the prefix check decides)."""
    for item in _pages(client, operation, key, NameContains=prefix):
        if item[name_key].startswith(f"{prefix}-"):
            yield item[name_key]


def _pages(client: Any, operation: str, key: str, **kwargs: Any) -> Iterator[dict]:
    """Every item of a paginated listing (NextToken / nextToken)."""
    token_key = "nextToken" if operation == "describe_log_streams" else "NextToken"
    token = None
    while True:
        page = getattr(client, operation)(**kwargs, **({token_key: token} if token else {}))
        yield from page.get(key, [])
        token = page.get(token_key)
        if not token:
            return
