"""After `cdk destroy`: list what of a stage still exists and would bill; exit 1 if anything does.

`make teardown-check STAGE=dev` (or `python -m returnguard.aws.teardown --stage dev`) looks in the
current account and region (the usual AWS_PROFILE / AWS_REGION) at:
- every resource the Resource Groups Tagging API finds tagged `project=returnguard` and `stage=<stage>`
  (the stacks tag all they create; the retraining promotion copies those tags to its endpoint configs);
- what no tag finds: Kinesis streams (the tagging API does not list them) by tag or by the stack-name
  prefix `ReturnGuard-<stage>-`; log groups the services or Lambda create themselves (`/aws/lambda/
  ReturnGuard-<stage>-*`, `/aws/sagemaker/Endpoints/<prefix>-*`, Glue's groups under `<prefix>-glue`) and
  `<prefix>-*` streams in `/aws/sagemaker/TrainingJobs`; SageMaker endpoints, endpoint configs, models and
  model package groups named `<prefix>-*`, and running `<prefix>-*` training jobs.
A KMS key pending deletion is reported as a note, not a leftover: it stops costing once deleted (7 days).
The shared ReturnGuard-ApiGatewayAccount role carries no stage tag and does not bill.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"


@dataclass(frozen=True)
class Leftover:
    kind: str
    name: str
    note: str = ""


@dataclass
class TeardownReport:
    leftovers: list[Leftover]
    notes: list[Leftover]

    @property
    def clean(self) -> bool:
        return not self.leftovers


def check(clients: Any, *, stage: str, prefix: str) -> TeardownReport:
    """`clients(service_name)` returns a boto3 client for the account and region to check."""
    leftovers: dict[tuple[str, str], Leftover] = {}
    notes: list[Leftover] = []

    def add(kind: str, name: str, note: str = "") -> None:
        leftovers.setdefault((kind, name), Leftover(kind, name, note))

    tagging, kms = clients("resourcegroupstaggingapi"), clients("kms")
    tag_filters = [{"Key": "project", "Values": ["returnguard"]}, {"Key": "stage", "Values": [stage]}]
    for resource in _pages(
        tagging, "get_resources", "ResourceTagMappingList", "PaginationToken", TagFilters=tag_filters
    ):
        arn = resource["ResourceARN"]
        kind = _kind(arn)
        if kind == "kms:key":
            state = kms.describe_key(KeyId=arn)["KeyMetadata"]["KeyState"]
            if state == "PendingDeletion":
                notes.append(
                    Leftover(kind, arn, "pending deletion: unusable, deleted after its waiting period")
                )
                continue
        add(kind, arn)

    kinesis = clients("kinesis")
    for name in _pages(
        kinesis, "list_streams", "StreamNames", "NextToken", paginate_with="ExclusiveStartStreamName"
    ):
        tags = {t["Key"]: t["Value"] for t in kinesis.list_tags_for_stream(StreamName=name)["Tags"]}
        if name.startswith(f"ReturnGuard-{stage}-") or (
            tags.get("project") == "returnguard" and tags.get("stage") == stage
        ):
            add("kinesis:stream", name, "on-demand: ~$29/month while it exists")

    logs = clients("logs")
    for group_prefix in (
        f"/aws/lambda/ReturnGuard-{stage}-",
        f"/aws/sagemaker/Endpoints/{prefix}-",
        f"/aws-glue/jobs/{prefix}-glue-role/",
        f"/aws-glue/jobs/logs-v2-{prefix}-glue",
    ):
        for group in _pages(
            logs, "describe_log_groups", "logGroups", "nextToken", logGroupNamePrefix=group_prefix
        ):
            add("logs:log-group", group["logGroupName"], "stored log data")
    for group in _pages(
        logs, "describe_log_groups", "logGroups", "nextToken", logGroupNamePrefix="/aws-glue/crawlers-role/"
    ):
        if group["logGroupName"].endswith(f"-{prefix}-glue"):
            add("logs:log-group", group["logGroupName"], "stored log data")
    try:
        streams = list(
            _pages(
                logs,
                "describe_log_streams",
                "logStreams",
                "nextToken",
                logGroupName=TRAINING_LOG_GROUP,
                logStreamNamePrefix=f"{prefix}-",
            )
        )
    except logs.exceptions.ResourceNotFoundException:
        streams = []
    for stream in streams:
        add("logs:log-stream", f"{TRAINING_LOG_GROUP}:{stream['logStreamName']}", "stored log data")

    sagemaker = clients("sagemaker")
    for operation, key, name_key, kind, note in (
        (
            "list_endpoints",
            "Endpoints",
            "EndpointName",
            "sagemaker:endpoint",
            "bills per hour or per request",
        ),
        ("list_endpoint_configs", "EndpointConfigs", "EndpointConfigName", "sagemaker:endpoint-config", ""),
        ("list_models", "Models", "ModelName", "sagemaker:model", ""),
        (
            "list_model_package_groups",
            "ModelPackageGroupSummaryList",
            "ModelPackageGroupName",
            "sagemaker:model-package-group",
            "",
        ),
    ):
        for item in _pages(sagemaker, operation, key, "NextToken", NameContains=prefix):
            if item[name_key].startswith(f"{prefix}-"):
                add(kind, item[name_key], note)
    for job in _pages(
        sagemaker,
        "list_training_jobs",
        "TrainingJobSummaries",
        "NextToken",
        NameContains=prefix,
        StatusEquals="InProgress",
    ):
        if job["TrainingJobName"].startswith(f"{prefix}-"):
            add("sagemaker:training-job", job["TrainingJobName"], "running: bills per instance-second")
    return TeardownReport(leftovers=sorted(leftovers.values(), key=lambda x: (x.kind, x.name)), notes=notes)


def _kind(arn: str) -> str:
    """`service:resource-type` of an ARN (arn:partition:service:region:account:type/name or type:name)."""
    parts = arn.split(":", 5)
    service, resource = parts[2], parts[5] if len(parts) > 5 else ""
    if service == "s3":
        return "s3:bucket"
    return f"{service}:{resource.replace(':', '/').split('/', 1)[0]}"


def _pages(
    client: Any, operation: str, key: str, token_key: str, paginate_with: str = "", **kwargs: Any
) -> Iterator[Any]:
    """Every item of a listing; `paginate_with` names a request key fed with the last item instead of a token."""
    request = dict(kwargs)
    while True:
        page = getattr(client, operation)(**request)
        items = page.get(key, [])
        yield from items
        if paginate_with:
            if not page.get("HasMoreStreams") or not items:
                return
            request[paginate_with] = items[-1]
            continue
        token = page.get(token_key)
        if not token:
            return
        request[token_key] = token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="teardown-check", description=__doc__.splitlines()[0])
    parser.add_argument("--stage", required=True, choices=("dev", "prod"))
    parser.add_argument(
        "--prefix", default="", help="the deployment's 'prefix' (default returnguard-<stage>)"
    )
    parser.add_argument("--region", default=None, help="default: the AWS_REGION / profile's region")
    args = parser.parse_args(argv)
    prefix = args.prefix or f"returnguard-{args.stage}"

    import boto3

    session = boto3.session.Session(region_name=args.region)
    report = check(session.client, stage=args.stage, prefix=prefix)
    where = f"stage {args.stage} (prefix {prefix}) in {session.region_name}"
    for note in report.notes:
        print(f"note  {note.kind:32} {note.name}  ({note.note})")
    if report.clean:
        print(f"teardown-check: nothing of {where} is left that bills")
        return 0
    for item in report.leftovers:
        print(f"left  {item.kind:32} {item.name}" + (f"  ({item.note})" if item.note else ""))
    print(f"teardown-check: {len(report.leftovers)} resource(s) of {where} still exist", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
