"""Compose the stacks: each gets what it needs through its props; grants happen where two stacks meet."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import App, Aspects, CfnOutput, CfnResource, Environment, Stack, Tags
from aws_cdk import aws_lambda as lambda_
from cdk_nag import (
    AwsSolutionsChecks,
    NagPackSuppression,
    NagSuppressions,
    NIST80053R5Checks,
    ServerlessChecks,
)

from stacks.account import ACCOUNT_STACK_NAME, ApiGatewayAccountStack
from stacks.api import ApiProps, ApiStack
from stacks.batch import BatchProps, BatchStack
from stacks.blocklist import BlocklistProps, BlocklistStack
from stacks.config import StageConfig
from stacks.console import ConsoleProps, ConsoleStack
from stacks.constructs import checkov_skip
from stacks.data import DataProps, DataStack
from stacks.etl import EtlProps, EtlStack
from stacks.ml import MlProps, MlStack
from stacks.monitoring import MonitoringProps, MonitoringStack
from stacks.pipeline import PipelineProps, PipelineStack
from stacks.retention import RetentionProps, RetentionStack
from stacks.streaming import StreamingProps, StreamingStack


@dataclass(frozen=True)
class ReturnGuardStacks:
    data: DataStack
    streaming: StreamingStack
    etl: EtlStack
    ml: MlStack
    api: ApiStack
    pipeline: PipelineStack
    monitoring: MonitoringStack
    blocklist: BlocklistStack | None
    account: ApiGatewayAccountStack | None = None  # shared by every stage of the account and region
    batch: BatchStack | None = None
    retention: RetentionStack | None = None
    console: ConsoleStack | None = None

    def all(self) -> list[Stack]:
        """The stage's stacks (the shared account stack is not one of them)."""
        stacks = [self.data, self.streaming, self.etl, self.ml, self.api, self.pipeline, self.monitoring]
        return stacks + [s for s in (self.blocklist, self.batch, self.retention, self.console) if s]


def build(app: App, config: StageConfig, *, nag: bool = True) -> ReturnGuardStacks:
    env = (
        Environment(account=config.account, region=config.region) if config.account or config.region else None
    )
    name = f"ReturnGuard-{config.stage}"

    data = DataStack(app, f"{name}-Data", props=DataProps(config=config), env=env)
    CfnOutput(data, "LakeBucket", value=data.lake.bucket_name)
    streaming = StreamingStack(
        app,
        f"{name}-Streaming",
        props=StreamingProps(
            config=config,
            key=data.key,
            lake=data.lake,
            features_table=data.tables["features"],
            idempotency_table=data.tables["idempotency"],
        ),
        env=env,
    )
    CfnOutput(streaming, "StreamName", value=streaming.stream.stream_name)
    etl = EtlStack(app, f"{name}-Etl", props=EtlProps(config=config, key=data.key, lake=data.lake), env=env)
    retention = RetentionStack(
        app,
        f"{name}-Retention",
        props=RetentionProps(
            config=config,
            key=data.key,
            lake=data.lake,
            decisions_table=data.tables["decisions"],
            database_name=etl.database.ref,
        ),
        env=env,
    )
    ml = MlStack(app, f"{name}-Ml", props=MlProps(config=config, key=data.key, lake=data.lake), env=env)
    CfnOutput(ml, "EndpointName", value=ml.endpoint.attr_endpoint_name)
    api = ApiStack(
        app,
        f"{name}-Api",
        props=ApiProps(
            config=config,
            key=data.key,
            tables=dict(data.tables),
            endpoint_name=ml.endpoint_name,
            endpoint_arn=ml.endpoint_arn,
            lake=data.lake,
        ),
        env=env,
    )
    api.add_stack_dependency(ml, "the score function calls the endpoint")
    account = None
    if config.api_gateway_account:
        account = ApiGatewayAccountStack(app, ACCOUNT_STACK_NAME, env=env)
        Tags.of(account).add("project", "returnguard")  # no stage tag: it belongs to every stage
        api.add_stack_dependency(account, "the stage's execution logging needs the account's CloudWatch role")
    pipeline = PipelineStack(
        app,
        f"{name}-Pipeline",
        props=PipelineProps(
            config=config,
            key=data.key,
            lake=data.lake,
            features_job_name=etl.features_job_name,
            image_uri=ml.image_uri,
            source_dir_url=ml.source_dir.s3_object_url,
            training_role=ml.training_role,
            serving_role=ml.serving_role,
            model_package_group_name=ml.model_package_group_name,
            endpoint_name=ml.endpoint_name,
            bootstrap_endpoint_config_arn=ml.endpoint_config.ref,
            bootstrap_model_arn=ml.model.ref,
        ),
        env=env,
    )
    pipeline.add_stack_dependency(etl, "the state machine starts the features job")
    pipeline.add_stack_dependency(
        ml, "the state machine registers into the model package group and updates the endpoint"
    )
    blocklist = None
    if config.blocklist.enabled:  # no database configured: no function, no (empty) stack
        blocklist = BlocklistStack(
            app,
            f"{name}-Blocklist",
            props=BlocklistProps(
                config=config, key=data.key, lake=data.lake, features_table=data.tables["features"]
            ),
            env=env,
        )
    batch = BatchStack(
        app,
        f"{name}-Batch",
        props=BatchProps(
            config=config,
            key=data.key,
            lake=data.lake,
            flagged_table=data.tables["flagged"],
            claims_table=data.tables["idempotency"],
            database_name=etl.database_name,
            security_configuration_name=etl.security_configuration.ref,
        ),
        env=env,
    )
    batch.add_stack_dependency(etl, "the predictions table is in the lake's database")
    CfnOutput(batch, "BatchAlertsTopicArn", value=batch.topic.topic_arn)
    CfnOutput(batch, "BatchStateMachineArn", value=batch.state_machine.state_machine_arn)
    console = ConsoleStack(
        app,
        f"{name}-Console",
        props=ConsoleProps(
            config=config,
            key=data.key,
            lake=data.lake,
            decisions_table=data.tables["decisions"],
            audit_table=data.tables["audit"],
            flagged_table=data.tables["flagged"],
            web_acl=getattr(api, "web_acl", None),
        ),
        env=env,
    )
    if account:
        console.add_stack_dependency(
            account, "the stage's execution logging needs the account's CloudWatch role"
        )
    CfnOutput(console, "ConsoleUserPoolArn", value=console.user_pool.user_pool_arn)
    retention.forget_similar_cases(console.vector_bucket.vector_bucket_name or "", console.case_index_name)
    monitoring = MonitoringStack(
        app,
        f"{name}-Monitoring",
        props=MonitoringProps(
            config=config,
            key=data.key,
            api=api.api,
            score_function=api.function,
            stream_function=streaming.function,
            stream=streaming.stream,
            dead_letters=streaming.dead_letters,
            endpoint_name=ml.endpoint_name,
            more_dead_letters=(
                ("the weekly retraining schedule", pipeline.schedule_dead_letters),
                *((("the blocklist sync", blocklist.dead_letters),) if blocklist else ()),
                *batch.dead_letters,
                ("the daily review summary's schedule", console.summary_dead_letters),
                ("the reason clusters' schedule", console.clusters_dead_letters),
            ),
            archive_function=retention.function,
            archive_dead_letters=retention.dead_letters,
            lake=data.lake,
            audit_table=data.tables["audit"],
            bootstrap_model=ml.model_artifact,
            bootstrap_endpoint_config_arn=ml.endpoint_config.ref,
            bootstrap_model_arn=ml.model.ref,
            batch_state_machine=batch.state_machine,
        ),
        env=env,
    )
    stacks = ReturnGuardStacks(
        data,
        streaming,
        etl,
        ml,
        api,
        pipeline,
        monitoring,
        blocklist,
        account,
        batch,
        retention=retention,
        console=console,
    )
    for stack in stacks.all():
        Tags.of(stack).add("project", "returnguard")
        Tags.of(stack).add("stage", config.stage)
        _skip_cdk_providers(stack)
        NagSuppressions.add_stack_suppressions(
            stack,
            [
                NagPackSuppression(
                    id="NIST.800.53.R5-IAMNoInlinePolicy",
                    reason="Each role's permissions are the policy CDK generates from that role's grants, "
                    "attached to that role only and deleted with it; a customer-managed policy would be "
                    "attachable to other principals, which nothing here needs.",
                )
            ],
        )
    if nag:
        for pack in (AwsSolutionsChecks, ServerlessChecks, NIST80053R5Checks):
            Aspects.of(app).add(pack(verbose=True))
    return stacks


def _skip_cdk_providers(stack: Stack) -> None:
    """CDK's own custom-resource provider functions (S3 auto-delete in dev, ...) are plain CfnResources:
    nothing to configure them with, so checkov's function checks are skipped with the reason."""
    reason = (
        "CDK's own custom-resource provider: CloudFormation invokes it synchronously during deploy and "
        "destroy only and reports its failure; it calls only AWS APIs, and runs rarely."
    )
    for child in stack.node.find_all():
        if (
            isinstance(child, CfnResource)
            and child.cfn_resource_type == "AWS::Lambda::Function"
            and not isinstance(child, lambda_.CfnFunction)
        ):
            for check in ("CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117"):
                checkov_skip(child, check, reason)
