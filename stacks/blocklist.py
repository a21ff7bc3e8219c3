"""Blocklist stack: a scheduled `blocklist_sync` function copying a MySQL-compatible blocklist into the
features table. Synthesizes without the function when no database is configured."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from stacks.config import StageConfig
from stacks.constructs import PythonFunction, suppress
from stacks.packaging import lambda_staging_folder


@dataclass(frozen=True)
class BlocklistProps:
    config: StageConfig
    key: kms.IKey
    lake: s3.IBucket
    features_table: dynamodb.ITable


class BlocklistStack(Stack):
    def __init__(self, scope: Construct, id: str, *, props: BlocklistProps, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        config = props.config
        source = config.blocklist
        sync = PythonFunction(
            self,
            "BlocklistSync",
            config=config,
            key=props.key,
            code_folder=lambda_staging_folder("blocklist_sync", vendor=("pymysql",)),
            memory_size=256,
            timeout=Duration.minutes(5),
            # none by default: an account's unreserved concurrency must stay >= 10, and new accounts have 10
            reserved_concurrency=source.reserved_concurrency or None,
            description="Copies the blocklist from the MySQL-compatible database into the features table",
            environment={
                "RG_FEATURES_TABLE": props.features_table.table_name,
                "RG_LAKE_BUCKET": props.lake.bucket_name,
                "RG_DB_SECRET_ARN": source.db_secret_arn,
                "RG_DB_NAME": source.db_name,
                "RG_STAGE": config.stage,
                "POWERTOOLS_SERVICE_NAME": "returnguard",
                "POWERTOOLS_METRICS_NAMESPACE": "ReturnGuard",
                "POWERTOOLS_LOG_LEVEL": "INFO",
            },
        )
        self.function = sync.function
        secretsmanager.Secret.from_secret_complete_arn(self, "DbSecret", source.db_secret_arn).grant_read(
            sync.role
        )
        props.features_table.grant_read_write_data(sync.role)
        props.lake.grant_put(sync.role, "raw/blocklist/*")
        if source.vpc_id:
            # VPC-agnostic: the function joins existing subnets without looking the VPC up at synth.
            cfn = sync.function.node.default_child
            cfn.add_property_override(  # type: ignore[union-attr]
                "VpcConfig",
                {"SubnetIds": list(source.subnet_ids), "SecurityGroupIds": [source.security_group_id]},
            )
            sync.role.add_to_policy(
                iam.PolicyStatement(
                    actions=[
                        "ec2:CreateNetworkInterface",
                        "ec2:DescribeNetworkInterfaces",
                        "ec2:DeleteNetworkInterface",
                        "ec2:AssignPrivateIpAddresses",
                        "ec2:UnassignPrivateIpAddresses",
                    ],
                    resources=["*"],
                )
            )
        events.Rule(
            self,
            "Schedule",
            schedule=events.Schedule.rate(Duration.minutes(source.schedule_minutes)),
            targets=[targets.LambdaFunction(sync.function, retry_attempts=2)],
        )
        suppress(
            sync.role,
            "AwsSolutions-IAM5",
            "Writes only under the lake's raw/blocklist/ prefix; KMS data-key actions on the stage key; "
            "Lambda's VPC ENI actions have no resource-level permissions.",
            applies_to=[
                "Resource::*",
                "Action::kms:GenerateDataKey*",
                "Action::kms:ReEncrypt*",
                "Action::kms:Describe*",
                "Action::s3:Abort*",
                "Action::s3:PutObject*",
                {"regex": "/^Resource::.*Lake.*\\.Arn.*\\/raw\\/blocklist\\/\\*$/"},
                {"regex": "/^Resource::.*Table.*\\.Arn>\\/index\\/\\*$/"},
            ],
        )
