"""Retention stack: decisions the TTL removes from DynamoDB after 90 days are archived to the lake.

The decisions table's stream (old images) → the `archive` function, invoked only for removals made by the
TTL service (an event filter: filtered-out records cost nothing) → Parquet under
`processed/predictions/decisions/dt=<decision day>/` → the Glue table `decisions_archive` (partition projection, so Athena
sees a new day without a crawler or MSCK REPAIR). The lake's lifecycle rules live in the Data stack.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from constructs import Construct

from returnguard.archive import ARCHIVE_COLUMNS, ARCHIVE_PREFIX, PARTITION, TTL_IDENTITY
from stacks.config import StageConfig
from stacks.constructs import PythonFunction, dead_letter_queue, logical_id, suppress
from stacks.layers import sdk_for_pandas_layer_arn
from stacks.packaging import lambda_staging_folder

ARCHIVE_TABLE = "decisions_archive"
# Partition projection's first day: no decision was made by this code before it.
PROJECTION_START = "2026-01-01"


@dataclass(frozen=True)
class RetentionProps:
    config: StageConfig
    key: kms.IKey
    lake: s3.IBucket
    decisions_table: dynamodb.ITable
    database_name: str


class RetentionStack(Stack):
    def __init__(self, scope: Construct, id: str, *, props: RetentionProps, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        config = props.config
        self.dead_letters = dead_letter_queue(
            self,
            "ArchiveDeadLetters",
            key=props.key,
            of="the archive function's stream event source (its on-failure destination)",
        )
        archiver = PythonFunction(
            self,
            "DecisionArchiver",
            config=config,
            key=props.key,
            code_folder=lambda_staging_folder("archive"),
            memory_size=1024,  # pyarrow's import and a batch of up to 1,000 decisions
            timeout=Duration.seconds(120),
            description="Archives decisions the TTL removes to processed/predictions/decisions/ (Parquet)",
            environment={
                "RG_LAKE_BUCKET": props.lake.bucket_name,
                "RG_STAGE": config.stage,
                "POWERTOOLS_SERVICE_NAME": "returnguard",
                "POWERTOOLS_LOG_LEVEL": config.log_level,
            },
        )
        archiver.function.add_layers(
            lambda_.LayerVersion.from_layer_version_arn(self, "SdkForPandas", sdk_for_pandas_layer_arn(self))
        )
        self.function = archiver.function
        self.function.add_event_source(
            sources.DynamoEventSource(
                props.decisions_table,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=1000,
                max_batching_window=Duration.seconds(60),
                # A failing batch is retried until it works or its records leave the stream (24 h): the
                # records are the only copy once the TTL has deleted the items, so no retry limit and no
                # record age limit end the attempts early. IteratorAge alarms long before (Monitoring).
                retry_attempts=-1,
                bisect_batch_on_error=False,  # a retry starts at the same record (idempotent object names)
                parallelization_factor=1,
                on_failure=sources.SqsDlq(self.dead_letters),
                filters=[
                    lambda_.FilterCriteria.filter(
                        {
                            "eventName": lambda_.FilterRule.is_equal("REMOVE"),
                            "userIdentity": {
                                name: lambda_.FilterRule.is_equal(value)
                                for name, value in TTL_IDENTITY.items()
                            },
                        }
                    )
                ],
            )
        )
        props.lake.grant_put(archiver.role, f"{ARCHIVE_PREFIX}*")
        props.key.grant(archiver.role, "kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt")
        suppress(
            archiver.role,
            "AwsSolutions-IAM5",
            "Archive objects are written under the lake's processed/predictions/decisions/ prefix only; KMS data-key "
            "actions are on the one stage key; dynamodb:ListStreams takes no resource (CDK's stream read grant).",
            applies_to=[
                "Action::kms:GenerateDataKey*",
                "Action::kms:ReEncrypt*",
                "Action::s3:Abort*",
                "Action::s3:PutObject*",
                "Resource::*",
                f"Resource::<{logical_id(props.lake)}.Arn>/{ARCHIVE_PREFIX}*",  # type: ignore[arg-type]
            ],
        )
        not_async = (
            "Invoked only by its DynamoDB stream event source mapping, whose on-failure destination is the "
            "ArchiveDeadLetters queue; a function DLQ applies to asynchronous invocations, which it never gets."
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
            "Calls only AWS APIs (DynamoDB Streams, S3) over TLS with IAM authentication and reaches no "
            "private resource; a VPC would add NAT or interface endpoints and protect nothing more.",
        )

        self._archiver_role = archiver.role

        location = props.lake.s3_url_for_object(ARCHIVE_PREFIX.rstrip("/"))
        self.table = glue.CfnTable(
            self,
            "PredictionsTable",
            catalog_id=self.account,
            database_name=props.database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=ARCHIVE_TABLE,
                description="Decisions archived when the TTL removed them from DynamoDB (90 days)",
                table_type="EXTERNAL_TABLE",
                parameters={
                    "classification": "parquet",
                    "projection.enabled": "true",
                    f"projection.{PARTITION}.type": "date",
                    f"projection.{PARTITION}.format": "yyyy-MM-dd",
                    f"projection.{PARTITION}.range": f"{PROJECTION_START},NOW",
                    f"projection.{PARTITION}.interval": "1",
                    f"projection.{PARTITION}.interval.unit": "DAYS",
                    "storage.location.template": f"{location}/{PARTITION}=${{{PARTITION}}}/",
                },
                partition_keys=[glue.CfnTable.ColumnProperty(name=PARTITION, type="string")],
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    location=f"{location}/",
                    input_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                    output_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library="org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
                    ),
                    columns=[glue.CfnTable.ColumnProperty(name=n, type=t) for n, t in ARCHIVE_COLUMNS],
                ),
            ),
        )

    def forget_similar_cases(self, vector_bucket: str, index: str) -> None:
        """The archive function also deletes the decided cases the TTL removed from the console's
        similar-cases index (lambdas/archive/handler.py), so the index forgets what the table forgot. Its
        role may only DeleteVectors in that one index. The ARN is built from the bucket's and index's
        fixed names rather than imported from the Console stack: an export would block replacing the
        index, and a delete before the index exists is only logged."""
        self.function.add_environment("RG_VECTOR_BUCKET", vector_bucket)
        self.function.add_environment("RG_VECTOR_INDEX", index)
        self._archiver_role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3vectors:DeleteVectors"],
                resources=[
                    self.format_arn(
                        service="s3vectors", resource="bucket", resource_name=f"{vector_bucket}/index/{index}"
                    )
                ],
            )
        )
