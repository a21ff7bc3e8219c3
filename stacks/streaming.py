"""Streaming stack: the Kinesis `events` stream and the `stream` consumer with partial-batch failure and a DLQ."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from constructs import Construct

from returnguard.order_record import order_record_key
from returnguard.returns_rules import DEFAULT_RETURN_WINDOW_DAYS
from stacks.config import StageConfig
from stacks.constructs import PythonFunction, dead_letter_queue, logical_id, removal_policy, suppress
from stacks.packaging import lambda_staging_folder


@dataclass(frozen=True)
class StreamingProps:
    config: StageConfig
    key: kms.IKey
    lake: s3.IBucket
    features_table: dynamodb.ITable
    idempotency_table: dynamodb.ITable


class StreamingStack(Stack):
    def __init__(self, scope: Construct, id: str, *, props: StreamingProps, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        config = props.config
        self.stream = kinesis.Stream(
            self,
            "Events",
            stream_mode=kinesis.StreamMode.ON_DEMAND,
            encryption=kinesis.StreamEncryption.KMS,
            encryption_key=props.key,
            retention_period=Duration.hours(config.stream_retention_hours),
            # dev: deleted with the stack (an on-demand stream bills ~$29/month idle); prod: retained like
            # the tables, since it may hold events the consumer has not applied yet (docs/deploy.md)
            removal_policy=removal_policy(config),
        )
        suppress(
            self.stream,
            "AwsSolutions-KDS3",
            "The stream carries customer and order identifiers: it is encrypted with the stage's customer "
            "managed key (rotation on, one key for every store) rather than the aws/kinesis key.",
        )
        self.dead_letters = dead_letter_queue(
            self, "StreamDeadLetters", key=props.key, of="the stream consumer (its on-failure destination)"
        )
        consumer = PythonFunction(
            self,
            "StreamConsumer",
            config=config,
            key=props.key,
            code_folder=lambda_staging_folder("stream"),
            memory_size=512,
            timeout=Duration.seconds(60),
            description="Applies order/return events to the online aggregates and lands them in raw/",
            environment={
                "RG_FEATURES_TABLE": props.features_table.table_name,
                "RG_IDEMPOTENCY_TABLE": props.idempotency_table.table_name,
                "RG_LAKE_BUCKET": props.lake.bucket_name,
                "RG_DLQ_URL": self.dead_letters.queue_url,
                "RG_RETURN_WINDOW_DAYS": str(
                    config.return_policy.get("return_window_days", DEFAULT_RETURN_WINDOW_DAYS)
                ),
                "RG_STAGE": config.stage,
                "POWERTOOLS_SERVICE_NAME": "returnguard",
                "POWERTOOLS_METRICS_NAMESPACE": "ReturnGuard",
                "POWERTOOLS_LOG_LEVEL": config.log_level,
            },
        )
        self.function = consumer.function
        self.function.add_event_source(
            sources.KinesisEventSource(
                self.stream,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=100,
                max_batching_window=Duration.seconds(1),
                bisect_batch_on_error=True,
                report_batch_item_failures=True,
                retry_attempts=3,
                max_record_age=Duration.hours(6),
                # 1: a shard's records are applied in order, one batch at a time; the exactly-once
                # bookkeeping (last sequence number per shard on each item) depends on it
                parallelization_factor=1,
                on_failure=sources.SqsDlq(self.dead_letters),
            )
        )
        # Exactly the calls StreamApplier makes (returnguard/aws/stream_apply.py): no Scan, Query or deletes.
        for table, actions in (
            (props.features_table, ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem"]),
            (props.idempotency_table, ["dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"]),  # done markers
        ):
            consumer.role.add_to_policy(iam.PolicyStatement(actions=actions, resources=[table.table_arn]))
        # and UpdateItem on the `order#` records only (returnguard/aws/order_records.py), never an aggregate
        consumer.role.add_to_policy(
            iam.PolicyStatement(
                actions=["dynamodb:UpdateItem"],
                resources=[props.features_table.table_arn],
                conditions={
                    "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{order_record_key('')}*"]}
                },
            )
        )
        props.key.grant(consumer.role, "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey")
        self.dead_letters.grant_send_messages(consumer.role)  # poison records, with their reason
        props.lake.grant_put(consumer.role, "raw/*")
        suppress(
            consumer.role,
            "AwsSolutions-IAM5",
            "Raw events land under the lake's raw/ prefix only; KMS data-key actions are on the one stage key; "
            "the Kinesis read grant's ListStreams-style actions are the CDK's standard consumer grant.",
            applies_to=[
                "Action::kms:GenerateDataKey*",
                "Action::kms:ReEncrypt*",
                "Action::s3:Abort*",
                "Action::s3:PutObject*",
                f"Resource::<{_import_name(props.lake)}.Arn>/raw/*",
            ],
        )
        not_async = (
            "Invoked only by its Kinesis event source mapping, whose on-failure destination is the "
            "StreamDeadLetters queue; a function DLQ applies to asynchronous invocations, which it never gets."
        )
        suppress(self.function, "Serverless-LambdaDLQ", not_async)
        suppress(self.function, "NIST.800.53.R5-LambdaDLQ", not_async)
        suppress(
            self.function,
            "NIST.800.53.R5-LambdaConcurrency",
            "The stream bounds concurrency: one batch per shard at a time (parallelization factor 1); "
            "reserving concurrency takes it from the account's unreserved pool (new accounts have 10).",
        )
        suppress(
            self.function,
            "NIST.800.53.R5-LambdaInsideVPC",
            "Calls only AWS APIs (Kinesis, DynamoDB, S3, SQS) over TLS with IAM authentication and reaches "
            "no private resource; a VPC would add NAT or interface endpoints and protect nothing more.",
        )
        self.function_logical_id = logical_id(self.function)


def _import_name(bucket: s3.IBucket) -> str:
    """The id cdk-nag shows for a cross-stack bucket reference."""
    return logical_id(bucket)  # type: ignore[arg-type]
