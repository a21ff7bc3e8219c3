"""Data stack: the KMS key, the S3 lake (seed-004 layout and retention) and the DynamoDB tables."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CfnResource, Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from returnguard.tables import ALL_TABLES, Key, TableDefinition
from stacks.config import StageConfig
from stacks.constructs import SecureBucket, log_group, removal_policy, suppress
from stacks.ml import DATA_CAPTURE_PREFIX

LAKE_PREFIXES = (
    "raw/orders/",
    "raw/returns/",
    "raw/customers/",
    "raw/products/",
    "processed/features/",
    "processed/training-data/",
    "processed/predictions/",
    "models/artifacts/",
    "models/metadata/",
    "external/festivals/",
    "external/regional/",
)


@dataclass(frozen=True)
class DataProps:
    config: StageConfig


class DataStack(Stack):
    def __init__(self, scope: Construct, id: str, *, props: DataProps, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        config = props.config
        self.key = kms.Key(
            self,
            "Key",
            alias=f"alias/{config.prefix}",
            description=f"{config.prefix}: encrypts the lake, tables, stream, queues, topic and Glue output",
            enable_key_rotation=True,
            removal_policy=removal_policy(config),
            pending_window=Duration.days(7),
        )
        # Services that encrypt on our behalf without a role of ours: alarms publishing to the topic,
        # Glue's encrypted CloudWatch logs, EventBridge targets.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[
                    iam.ServicePrincipal("cloudwatch.amazonaws.com"),
                    iam.ServicePrincipal("events.amazonaws.com"),
                    iam.ServicePrincipal("sns.amazonaws.com"),  # undeliverable alerts into their DLQ
                ],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            )
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal(f"logs.{self.region}.amazonaws.com")],
                actions=[
                    "kms:Encrypt",
                    "kms:Decrypt",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": f"arn:{self.partition}:logs:{self.region}:{self.account}:*"
                    }
                },
            )
        )

        self.access_logs = SecureBucket(self, "AccessLogs", config=config, key=None, access_logs=None).bucket
        suppress(
            self.access_logs,
            "AwsSolutions-S1",
            "This bucket is the server access log target; logging it into itself would loop.",
        )
        suppress(
            self.access_logs,
            "NIST.800.53.R5-S3DefaultEncryptionKMS",
            "S3 server access log delivery supports only SSE-S3 (AES-256) on the target bucket, not SSE-KMS.",
        )
        self.lake = SecureBucket(
            self,
            "Lake",
            config=config,
            key=self.key,
            access_logs=self.access_logs,
            access_logs_prefix="lake/",
            event_bridge=True,  # uploads under incoming/batch/ start the batch state machine (stacks/batch.py)
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="raw-to-glacier-after-2-years",
                    prefix="raw/",
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.GLACIER, transition_after=Duration.days(730)
                        )
                    ],
                ),
                s3.LifecycleRule(
                    id="processed-features-expire-after-1-year",
                    prefix="processed/features/",
                    expiration=Duration.days(365),
                ),
                s3.LifecycleRule(
                    # the decisions archive stays queryable: Athena reads Glacier Instant Retrieval objects
                    id="predictions-to-glacier-ir-after-1-year",
                    prefix="processed/predictions/",  # the decisions archive and batch predictions alike
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                            transition_after=Duration.days(365),
                        )
                    ],
                ),
                s3.LifecycleRule(
                    # every model ever trained is kept (no expiration); a rollback reads it in milliseconds
                    id="model-artifacts-kept-glacier-ir-after-90-days",
                    prefix="models/artifacts/",
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                            transition_after=Duration.days(90),
                        )
                    ],
                ),
                s3.LifecycleRule(
                    # captured endpoint requests hold the same features as decisions: the same 90 days
                    id="data-capture-expires-after-90-days",
                    prefix=DATA_CAPTURE_PREFIX,
                    expiration=Duration.days(90),
                ),
                s3.LifecycleRule(
                    id="noncurrent-versions-cleanup",
                    noncurrent_version_expiration=Duration.days(30),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                    expired_object_delete_marker=True,
                ),
            ],
        ).bucket

        self.tables: dict[str, dynamodb.Table] = {
            definition.logical_name: self._table(definition, config) for definition in ALL_TABLES
        }
        _own_auto_delete_logs(self, config)

    def _table(self, definition: TableDefinition, config: StageConfig) -> dynamodb.Table:
        table = dynamodb.Table(
            self,
            f"{definition.logical_name.title()}Table",
            partition_key=_attribute(definition.partition_key),
            sort_key=_attribute(definition.sort_key) if definition.sort_key else None,
            time_to_live_attribute=definition.ttl_attribute,
            stream=dynamodb.StreamViewType[definition.stream_view] if definition.stream_view else None,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=config.point_in_time_recovery
            ),
            deletion_protection=config.retain_data,
            removal_policy=removal_policy(config),
        )
        for index in definition.global_indexes:
            table.add_global_secondary_index(
                index_name=index.name,
                partition_key=_attribute(index.partition_key),
                sort_key=_attribute(index.sort_key) if index.sort_key else None,
                projection_type=dynamodb.ProjectionType.ALL,
            )
        if not config.point_in_time_recovery:
            for rule in ("AwsSolutions-DDB3", "NIST.800.53.R5-DynamoDBPITREnabled"):
                suppress(
                    table,
                    rule,
                    "Dev stage: data is synthetic and `cdk destroy` removes it; PITR is on in prod.",
                )
            suppress(
                table,
                "NIST.800.53.R5-DynamoDBInBackupPlan",
                "Dev stage: data is synthetic and `cdk destroy` removes it; there is nothing to back up.",
            )
        else:
            suppress(
                table,
                "NIST.800.53.R5-DynamoDBInBackupPlan",
                "Point-in-time recovery (on in prod) restores any second of the last 35 days; a second copy "
                "in AWS Backup ($0.10/GB-month) is left to the account's backup policy, which can select "
                "these tables by their tags (project=returnguard, stage=prod).",
            )
        return table


def _attribute(key: Key) -> dynamodb.Attribute:
    types = {
        "S": dynamodb.AttributeType.STRING,
        "N": dynamodb.AttributeType.NUMBER,
        "B": dynamodb.AttributeType.BINARY,
    }
    return dynamodb.Attribute(name=key.name, type=types[key.type])


def _own_auto_delete_logs(stack: Stack, config: StageConfig) -> None:
    """Dev's buckets are emptied on destroy by CDK's auto-delete function, which runs during the destroy and
    would leave its Lambda-made `/aws/lambda/...` group behind, never expiring. Pointed at a group of the
    stack (deleted after the function, which depends on it), nothing stays."""
    provider = stack.node.try_find_child("Custom::S3AutoDeleteObjectsCustomResourceProvider")
    if provider is None:  # prod: no auto-delete
        return
    handler = provider.node.find_child("Handler")
    assert isinstance(handler, CfnResource)
    group = log_group(stack, "AutoDeleteObjectsLogs", config=config, key=stack.key)  # type: ignore[attr-defined]
    handler.add_property_override("LoggingConfig", {"LogGroup": group.log_group_name})
    handler.add_dependency(group.node.default_child)  # type: ignore[arg-type]
