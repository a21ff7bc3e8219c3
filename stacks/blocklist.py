"""Blocklist stack: a scheduled `blocklist_sync` function copying a MySQL-compatible blocklist into the
features table. Synthesizes without the function when no database is configured."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from stacks.config import BlocklistConfig, StageConfig
from stacks.constructs import PythonFunction, dead_letter_queue, suppress
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
        # Failed scheduled runs: EventBridge could not invoke the function, or it failed after Lambda's
        # asynchronous retries. Both land here with the error.
        self.dead_letters = dead_letter_queue(
            self, "SyncDeadLetters", key=props.key, of="the blocklist sync's schedule and function"
        )
        code = lambda_staging_folder("blocklist_sync", vendor=("pymysql",))
        # TLS only: the handler verifies the database against this bundle (RDS's by default), shipped beside it.
        shutil.copyfile(source.ca_bundle, code / "rds-ca-bundle.pem")
        sync = PythonFunction(
            self,
            "BlocklistSync",
            config=config,
            key=props.key,
            code_folder=code,
            memory_size=256,
            timeout=Duration.minutes(5),
            # none by default: an account's unreserved concurrency must stay >= 10, and new accounts have 10
            reserved_concurrency=source.reserved_concurrency or None,
            dead_letter_queue=self.dead_letters,
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
        # Exactly the calls DynamoBlocklistTable makes (returnguard/aws/blocklist.py): no Scan, Query or batch.
        sync.role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                ],
                resources=[props.features_table.table_arn],
            )
        )
        props.key.grant(sync.role, "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey")
        props.lake.grant_put(sync.role, "raw/blocklist/*")
        if source.vpc_id:
            # VPC-agnostic: the function joins existing subnets without looking the VPC up at synth.
            cfn = sync.function.node.default_child
            assert isinstance(cfn, lambda_.CfnFunction)
            cfn.vpc_config = lambda_.CfnFunction.VpcConfigProperty(
                subnet_ids=list(source.subnet_ids), security_group_ids=[source.security_group_id]
            )
            _vpc_access(self, sync.role, source)
            if source.vpc_endpoints:
                _vpc_endpoints(self, source)
        else:
            suppress(
                sync.function,
                "NIST.800.53.R5-LambdaInsideVPC",
                "No 'vpc_id' configured: the database is reachable from Lambda's network, and the sync "
                "connects to it with TLS only (certificate verified against the configured CA bundle, RDS's "
                "by default).",
            )
        if not source.reserved_concurrency:
            suppress(
                sync.function,
                "NIST.800.53.R5-LambdaConcurrency",
                "One scheduled run every 'blocklist_schedule_minutes'; an overlapping run fails its conditional "
                "watermark write and changes nothing the first did not. Reserving concurrency "
                "('blocklist_reserved_concurrency') takes from the account's pool (new accounts have 10).",
            )
        events.Rule(
            self,
            "Schedule",
            schedule=events.Schedule.rate(Duration.minutes(source.schedule_minutes)),
            targets=[
                targets.LambdaFunction(sync.function, retry_attempts=2, dead_letter_queue=self.dead_letters)
            ],
        )
        suppress(
            sync.role,
            "AwsSolutions-IAM5",
            "Writes only under the lake's raw/blocklist/ prefix (CDK's put grant: PutObject*, Abort*; KMS "
            "data-key actions on the stage key, also for the encrypted dead-letter queue); "
            "ec2:DescribeNetworkInterfaces/DescribeSubnets have no resource-level permissions; network "
            "interfaces it creates are limited to the configured subnets and security group, and those it "
            "changes or deletes to the configured VPC.",
            applies_to=[
                "Resource::*",
                "Action::kms:GenerateDataKey*",
                "Action::kms:ReEncrypt*",
                "Action::s3:Abort*",
                "Action::s3:PutObject*",
                {"regex": "/^Resource::.*Lake.*\\.Arn.*\\/raw\\/blocklist\\/\\*$/"},
                {"regex": "/^Resource::arn:<AWS::Partition>:ec2:.*:network-interface\\/\\*$/"},
            ],
        )


def _vpc_access(stack: Stack, role: iam.IRole, source: BlocklistConfig) -> None:
    """What Lambda needs to attach the function to the configured subnets, and no more: unlike the
    managed AWSLambdaVPCAccessExecutionRole (every action on `*`), network interfaces can only be
    created in these subnets with this security group, and only this VPC's can be changed or deleted."""
    ec2_arn = f"arn:{stack.partition}:ec2:{stack.region}:{stack.account}"
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["ec2:CreateNetworkInterface"],
            resources=[
                f"{ec2_arn}:network-interface/*",
                f"{ec2_arn}:security-group/{source.security_group_id}",
                *(f"{ec2_arn}:subnet/{subnet}" for subnet in source.subnet_ids),
            ],
        )
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=[
                "ec2:DeleteNetworkInterface",
                "ec2:AssignPrivateIpAddresses",
                "ec2:UnassignPrivateIpAddresses",
            ],
            resources=[f"{ec2_arn}:network-interface/*"],
            conditions={"ArnEquals": {"ec2:Vpc": f"{ec2_arn}:vpc/{source.vpc_id}"}},
        )
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"],  # no resource-level permissions
            resources=["*"],
        )
    )


def _vpc_endpoints(stack: Stack, source: BlocklistConfig) -> None:
    """The AWS APIs the sync calls, reachable from subnets without a NAT gateway: S3 and DynamoDB through
    gateway endpoints on the subnets' route tables (free), Secrets Manager through an interface endpoint
    in the function's subnets (billed per AZ-hour). KMS is not called by the function: S3, DynamoDB and
    Secrets Manager use the keys on its behalf; its logs are shipped by Lambda, not from the VPC."""
    for service in ("s3", "dynamodb"):
        ec2.CfnVPCEndpoint(
            stack,
            f"{service.title()}Endpoint",
            vpc_id=source.vpc_id,
            service_name=f"com.amazonaws.{stack.region}.{service}",
            vpc_endpoint_type="Gateway",
            route_table_ids=list(source.route_table_ids),
        )
    endpoint_group = ec2.CfnSecurityGroup(
        stack,
        "EndpointSecurityGroup",
        vpc_id=source.vpc_id,
        group_description="HTTPS from the blocklist sync function to its interface VPC endpoints",
        security_group_ingress=[
            ec2.CfnSecurityGroup.IngressProperty(
                ip_protocol="tcp",
                from_port=443,
                to_port=443,
                source_security_group_id=source.security_group_id,
                description="HTTPS from the blocklist sync function",
            )
        ],
        security_group_egress=[
            # nothing leaves the endpoints' network interfaces on their own (a rule is needed to drop the default)
            ec2.CfnSecurityGroup.EgressProperty(
                ip_protocol="icmp",
                from_port=252,
                to_port=86,
                cidr_ip="255.255.255.255/32",
                description="no egress",
            )
        ],
    )
    ec2.CfnVPCEndpoint(
        stack,
        "SecretsManagerEndpoint",
        vpc_id=source.vpc_id,
        service_name=f"com.amazonaws.{stack.region}.secretsmanager",
        vpc_endpoint_type="Interface",
        subnet_ids=list(source.subnet_ids),
        security_group_ids=[endpoint_group.attr_group_id],
        private_dns_enabled=True,
    )
