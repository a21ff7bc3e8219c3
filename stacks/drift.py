"""The drift job construct: a daily function comparing the last day's traffic with the serving model's
training window (returnguard/drift.py), its schedule and its exact permissions. Alarms and widgets on its
metrics are the Monitoring stack's."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as assets
from constructs import Construct

from returnguard.aws.drift_job import DRIFT_PREFIX, METRIC_NAMESPACE
from stacks.config import StageConfig
from stacks.constructs import (
    PythonFunction,
    dead_letter_queue,
    grant_asset_read,
    logical_id,
    suppress,
    suppress_daily_job,
)
from stacks.ml import DATA_CAPTURE_PREFIX, MODEL_ARTIFACTS_PREFIX
from stacks.packaging import lambda_staging_folder

DRIFT_THRESHOLD = 0.25  # PSI at which the alarm fires (returnguard.drift.DRIFTED)


class DriftJob(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: StageConfig,
        key: kms.IKey,
        lake: s3.IBucket,
        audit_table: dynamodb.ITable,
        endpoint_name: str,
        bootstrap_model: assets.Asset,
        bootstrap_endpoint_config_arn: str,
        bootstrap_model_arn: str,
    ) -> None:
        super().__init__(scope, id)
        if not (bootstrap_endpoint_config_arn and bootstrap_model_arn):
            raise ValueError("the drift job needs the bootstrap endpoint config and model ARNs (Ml stack)")
        stack = Stack.of(self)
        # Serverless endpoints have no data capture: the audit trail holds the same vectors and scores.
        source = "audit" if config.endpoint.mode == "serverless" else "capture"
        job = PythonFunction(
            self,
            "DriftJob",
            config=config,
            key=key,
            code_folder=lambda_staging_folder("drift"),
            memory_size=1024,
            timeout=Duration.minutes(5),
            description="Daily PSI of each feature and of the score against the serving model's training window",
            environment={
                "RG_ENDPOINT_NAME": endpoint_name,
                "RG_LAKE_BUCKET": lake.bucket_name,
                "RG_DRIFT_SOURCE": source,
                "RG_CAPTURE_PREFIX": DATA_CAPTURE_PREFIX,
                "RG_AUDIT_TABLE": audit_table.table_name,
                "RG_DRIFT_WINDOW_HOURS": "24",
                "RG_DRIFT_THRESHOLD": str(DRIFT_THRESHOLD),
                "POWERTOOLS_SERVICE_NAME": "returnguard",
                "POWERTOOLS_LOG_LEVEL": config.log_level,
            },
        )
        self.function = job.function
        self.dead_letters = dead_letter_queue(
            self, "ScheduleDeadLetters", key=key, of="the drift job's daily schedule"
        )
        self.rule = events.Rule(
            self,
            "Daily",
            schedule=events.Schedule.cron(minute="30", hour="1"),
            targets=[
                targets.LambdaFunction(
                    self.function,
                    retry_attempts=2,
                    dead_letter_queue=self.dead_letters,
                )
            ],
            description="Drift report over the previous 24 hours",
        )
        role = job.role
        arn = f"arn:{stack.partition}:sagemaker:{stack.region}:{stack.account}"
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeEndpoint"], resources=[f"{arn}:endpoint/{endpoint_name}"]
            )
        )
        # The serving config and model change with every promotion: the bootstrap ones (named by
        # CloudFormation) or <prefix>-* (retraining, `returnguard models` and experiments name them so).
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel"],
                resources=[
                    f"{arn}:endpoint-config/{config.prefix}-*",
                    bootstrap_endpoint_config_arn,
                    f"{arn}:model/{config.prefix}-*",
                    bootstrap_model_arn,
                ],
            )
        )
        lake.grant_read(role, f"{MODEL_ARTIFACTS_PREFIX}*")
        lake.grant_read(role, f"{DATA_CAPTURE_PREFIX}*")
        lake.grant_put(role, f"{DRIFT_PREFIX}*")
        grant_asset_read(bootstrap_model, role)
        if source == "audit":
            role.add_to_policy(
                iam.PolicyStatement(actions=["dynamodb:Scan"], resources=[audit_table.table_arn])
            )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": METRIC_NAMESPACE}},
            )
        )
        key.grant(role, "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey")
        lake_id = logical_id(lake)  # type: ignore[arg-type]
        suppress(
            role,
            "AwsSolutions-IAM5",
            "Reads model artifacts and data capture and writes drift reports under their lake prefixes only; "
            "DescribeEndpointConfig/DescribeModel on this stage's <prefix>-* configs and models, the names "
            "promotion gives them (read-only, no data); PutMetricData supports no resource but is "
            "conditioned on the ReturnGuard namespace; KMS data-key actions on the one stage key.",
            applies_to=[
                "Action::s3:GetBucket*",
                "Action::s3:GetObject*",
                "Action::s3:List*",
                "Action::s3:Abort*",
                "Action::s3:PutObject*",
                "Action::kms:GenerateDataKey*",
                "Action::kms:ReEncrypt*",
                "Resource::*",
                f"Resource::<{lake_id}.Arn>/{MODEL_ARTIFACTS_PREFIX}*",
                f"Resource::<{lake_id}.Arn>/{DATA_CAPTURE_PREFIX}*",
                f"Resource::<{lake_id}.Arn>/{DRIFT_PREFIX}*",
                {
                    "regex": "/^Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:"
                    f"(endpoint-config|model)/{config.prefix}-\\*$/"
                },
            ],
        )
        suppress_daily_job(
            self.function,
            failed_run=", shows as a gap in the daily drift metrics, and the next run reports the following day",
            services="SageMaker, S3, DynamoDB, CloudWatch",
        )
