"""House constructs carrying the secure defaults once: encrypted TLS-only buckets, Python functions with
their own role and log group, and fine-grained cdk-nag suppressions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from aws_cdk import Aws, CfnResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo
from constructs import Construct

from stacks.config import POWERTOOLS_LAYER_ACCOUNT, POWERTOOLS_LAYER_VERSION, StageConfig

# The wildcard actions CDK's S3 read/put grants and KMS data-key grants write (GetObject*, List*, ...):
# what an IAM5 suppression names for a role given those grants on a prefix of the lake.
S3_KMS_GRANT_ACTIONS = (
    "Action::s3:GetBucket*",
    "Action::s3:GetObject*",
    "Action::s3:List*",
    "Action::s3:Abort*",
    "Action::s3:PutObject*",
    "Action::kms:GenerateDataKey*",
    "Action::kms:ReEncrypt*",
)


def grant_asset_read(asset: s3_assets.Asset, grantee: iam.IGrantable) -> None:
    """s3:GetObject on the asset's one object, where `asset.grant_read` would grant read on the whole CDK
    asset bucket (every stack's staged code and models)."""
    grantee.grant_principal.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["s3:GetObject"], resources=[asset.bucket.arn_for_objects(asset.s3_object_key)]
        )
    )


def removal_policy(config: StageConfig) -> RemovalPolicy:
    """Data survives `cdk destroy` in prod; in dev nothing is left behind."""
    return RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY


# cdk-nag rules whose checkov twin checks the same property of the same resource type: one reason serves
# both, so a suppression also skips the checkov check (Metadata.checkov.skip) with that reason.
CHECKOV_TWINS: dict[str, tuple[str, str]] = {
    "NIST.800.53.R5-LambdaDLQ": ("CKV_AWS_116", "AWS::Lambda::Function"),
    "NIST.800.53.R5-LambdaInsideVPC": ("CKV_AWS_117", "AWS::Lambda::Function"),
    "NIST.800.53.R5-LambdaConcurrency": ("CKV_AWS_115", "AWS::Lambda::Function"),
    "NIST.800.53.R5-DynamoDBPITREnabled": ("CKV_AWS_28", "AWS::DynamoDB::Table"),
    "AwsSolutions-S1": ("CKV_AWS_18", "AWS::S3::Bucket"),
}


def suppress(
    construct: Construct, rule: str, reason: str, applies_to: Sequence[str | dict | RegexAppliesTo] = ()
) -> None:
    """One cdk-nag suppression on one construct (and its children), with a reason and, for IAM5, the exact
    wildcard it accepts; the rule's checkov twin (CHECKOV_TWINS) is skipped with the same reason."""
    patterns = [RegexAppliesTo(regex=a["regex"]) if isinstance(a, dict) else a for a in applies_to]
    suppression = NagPackSuppression(id=rule, reason=reason, applies_to=patterns or None)
    NagSuppressions.add_resource_suppressions(construct, [suppression], apply_to_children=True)
    twin = CHECKOV_TWINS.get(rule)
    resource = construct if isinstance(construct, CfnResource) else construct.node.default_child
    if twin and isinstance(resource, CfnResource) and resource.cfn_resource_type == twin[1]:
        checkov_skip(resource, twin[0], reason)


def suppress_daily_job(function: Construct, *, failed_run: str, services: str) -> None:
    """The suppressions every once-a-day scheduled function shares: no dead-letter queue of its own (the
    rule has one; `failed_run` says what a failed run costs), no reserved concurrency, no VPC (`services`:
    the AWS APIs it calls)."""
    reason = (
        "Invoked asynchronously once a day by its EventBridge rule (undeliverable events go to the rule's "
        f"dead-letter queue); a failed run is in the function's Errors and logs{failed_run}: there is no "
        "event worth replaying."
    )
    suppress(function, "Serverless-LambdaDLQ", reason)
    suppress(function, "NIST.800.53.R5-LambdaDLQ", reason)
    suppress(
        function,
        "NIST.800.53.R5-LambdaConcurrency",
        "Runs once a day from one schedule; reserving concurrency would take it from the account's "
        "unreserved pool (new accounts have 10).",
    )
    suppress(
        function,
        "NIST.800.53.R5-LambdaInsideVPC",
        f"Calls only AWS APIs ({services}) over TLS with IAM authentication and reaches no private "
        "resource; a VPC would add NAT or interface endpoints and protect nothing more.",
    )


def log_group(
    scope: Construct, id: str, *, config: StageConfig, key: kms.IKey, name: str | None = None
) -> logs.LogGroup:
    """A log group with the stage's retention and removal policy, encrypted with the stage key (the key
    policy lets CloudWatch Logs use it for this account's log groups only)."""
    return logs.LogGroup(
        scope,
        id,
        log_group_name=name,
        encryption_key=key,
        retention=_retention(config.log_retention_days),
        removal_policy=removal_policy(config),
    )


_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    731: logs.RetentionDays.TWO_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def _retention(days: int) -> logs.RetentionDays:
    """The shortest supported retention that keeps logs at least `days` days."""
    return _RETENTION[min(value for value in _RETENTION if value >= days)]


class SecureBucket(Construct):
    """A versioned, KMS-encrypted (or SSE-S3 for log targets), TLS-only bucket without public access."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: StageConfig,
        key: kms.IKey | None,
        access_logs: s3.IBucket | None,
        access_logs_prefix: str = "",
        lifecycle_rules: Sequence[s3.LifecycleRule] = (),
        event_bridge: bool = False,
    ) -> None:
        super().__init__(scope, id)
        destroy = not config.retain_data
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.KMS if key else s3.BucketEncryption.S3_MANAGED,
            encryption_key=key,
            bucket_key_enabled=bool(key),
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED if access_logs else None,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix=access_logs_prefix or None,
            lifecycle_rules=list(lifecycle_rules),
            removal_policy=removal_policy(config),
            auto_delete_objects=destroy,
        )
        if event_bridge:
            # The bucket's own CloudFormation property: `event_bridge_enabled=True` would add CDK's
            # notifications custom resource (a Lambda with a managed policy and a log group left behind).
            resource = self.bucket.node.default_child
            assert isinstance(resource, CfnResource)
            resource.add_property_override(
                "NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled", True
            )
        suppress(
            self.bucket,
            "NIST.800.53.R5-S3BucketReplicationEnabled",
            "Single-region deployment: replication needs a bucket and key in a second region and doubles "
            "storage; objects are versioned, and prod retains the bucket on destroy.",
        )


class PythonFunction(Construct):
    """A Python 3.12 function: its own role and log group, X-Ray tracing, the pinned Powertools layer,
    and code from a staging folder built without Docker."""

    RUNTIME = lambda_.Runtime.PYTHON_3_12

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: StageConfig,
        key: kms.IKey,
        code_folder: Path,
        environment: Mapping[str, str],
        memory_size: int = 512,
        timeout: Duration | None = None,
        description: str = "",
        reserved_concurrency: int | None = None,
        dead_letter_queue: sqs.IQueue | None = None,
        snap_start: bool = False,
        extra_layers: Sequence[lambda_.ILayerVersion] = (),
    ) -> None:
        super().__init__(scope, id)
        self.log_group = log_group(self, "Logs", config=config, key=key)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{config.prefix} {id} function",
        )
        self.log_group.grant_write(self.role)
        layer = lambda_.LayerVersion.from_layer_version_arn(
            self,
            "Powertools",
            f"arn:{Aws.PARTITION}:lambda:{Stack.of(self).region}:{POWERTOOLS_LAYER_ACCOUNT}:layer:"
            f"AWSLambdaPowertoolsPythonV3-python312-x86_64:{POWERTOOLS_LAYER_VERSION}",
        )
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=self.RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            handler="handler.lambda_handler",
            code=lambda_.Code.from_asset(str(code_folder)),
            layers=[layer, *extra_layers],
            memory_size=memory_size,
            timeout=timeout or Duration.seconds(10),
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            environment=dict(environment),
            environment_encryption=key,
            description=description,
            reserved_concurrent_executions=reserved_concurrency,
            dead_letter_queue=dead_letter_queue,
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if snap_start else None,
            # A version replaced by the next deploy is deleted: nothing calls it, and with SnapStart its
            # cached snapshot would keep billing while it exists.
            current_version_options=lambda_.VersionOptions(removal_policy=RemovalPolicy.DESTROY),
        )
        key.grant_decrypt(self.role)  # the environment, encrypted with the stage key
        suppress(
            self.role,
            "AwsSolutions-IAM5",
            "X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions; "
            "log streams are created under this function's own log group only.",
            applies_to=["Resource::*", f"Resource::<{_logical(self.log_group)}.Arn>:*"],
        )
        runtime_reason = (
            "Python 3.12 is pinned with the AWS-managed Powertools v3 layer's python312 build "
            "(POWERTOOLS_LAYER_VERSION); returnguard/ requires Python >= 3.10 and the test suite runs on 3.11, "
            "so no newer runtime has been tested; moving runtimes (and the layer build) is a deliberate change."
        )
        suppress(self.function, "AwsSolutions-L1", runtime_reason)
        suppress(self.function, "Serverless-LambdaLatestVersion", runtime_reason)


def dead_letter_queue(scope: Construct, id: str, *, key: kms.IKey, of: str) -> sqs.Queue:
    """An encrypted, TLS-only queue that receives what `of` could not deliver (14 days to look at it).
    It is the end of the line, so it has no redrive policy of its own."""
    queue = sqs.Queue(
        scope,
        id,
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        enforce_ssl=True,
        retention_period=Duration.days(14),
    )
    reason = f"This queue is itself the dead-letter queue of {of}; nothing consumes it to redrive from."
    suppress(queue, "AwsSolutions-SQS3", reason)
    suppress(queue, "Serverless-SQSRedrivePolicy", reason)
    return queue


def checkov_skip(construct: Construct, check_id: str, comment: str) -> None:
    """Skip one checkov check on the construct's CloudFormation resource, with the reason in the
    template (`Metadata.checkov.skip`), so the skip lives next to the resource it is about."""
    resource = construct if isinstance(construct, CfnResource) else construct.node.default_child
    assert isinstance(resource, CfnResource), construct.node.path
    current = resource.get_metadata("checkov") or {"skip": []}
    current["skip"] = [s for s in current["skip"] if s["id"] != check_id] + [
        {"id": check_id, "comment": comment}
    ]
    resource.add_metadata("checkov", current)


def _logical(construct: Construct) -> str:
    """The logical id cdk-nag prints inside `<...>` for a construct's default CloudFormation resource."""
    child = construct.node.default_child
    assert child is not None
    return Stack.of(construct).get_logical_id(child)  # type: ignore[arg-type]


logical_id = _logical
