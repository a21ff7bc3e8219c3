"""Batch stack (seed 003): a transactions file uploaded under the lake's incoming/batch/ → EventBridge →
a state machine that claims the file by content digest, validates and converts it to Parquet, scores it
with exact contributions (a Lambda for small files, a Glue job for large ones), writes every prediction to
processed/predictions/payments/ (a Glue table Athena queries) and flagged rows to DynamoDB, quarantines a
bad file with its report, and publishes one SNS alert per file. docs/payments.md says why each choice."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, Fn, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as assets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from returnguard.batch import (
    BATCH_FAILED,
    FAILURE_SUBJECT,
    INCOMING_PREFIX,
    MODEL_PREFIX,
    PREDICTION_COLUMNS,
    PREDICTIONS_PREFIX,
    QUARANTINE_PREFIX,
    WORK_PREFIX,
)
from stacks.config import ROOT, StageConfig
from stacks.constructs import (
    PythonFunction,
    checkov_skip,
    dead_letter_queue,
    grant_asset_read,
    log_group,
    logical_id,
    suppress,
)
from stacks.packaging import lambda_staging_folder, packages_zip

# The AWS-managed "AWS SDK for pandas" layer (pyarrow, pandas, numpy), resolved per region at deploy from
# the public SSM parameter its maintainers publish for each release (layer versions differ by region).
AWS_SDK_PANDAS_VERSION = "3.16.1"
# XGBoost for the Glue job: Glue 5.0 installs it from PyPI at start (--additional-python-modules); the CPU
# build, at the version training and the SageMaker container use.
GLUE_XGBOOST = "xgboost-cpu==3.0.5"
FUNCTION_MEMORY_MB = 4096
FUNCTION_TIMEOUT = Duration.minutes(15)
STATE_MACHINE_TIMEOUT = Duration.hours(3)  # the claim's lease: a run that dies frees its file after this
PREDICTIONS_TABLE = "payments_predictions"


@dataclass(frozen=True)
class BatchProps:
    config: StageConfig
    key: kms.IKey
    lake: s3.IBucket
    flagged_table: dynamodb.ITable
    claims_table: dynamodb.ITable  # the idempotency table: one claim per file digest
    database_name: str  # the Etl stack's Glue database
    security_configuration_name: str  # the Etl stack's Glue security configuration


class BatchStack(Stack):
    def __init__(self, scope: Construct, id: str, *, props: BatchProps, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        config, lake, key = props.config, props.lake, props.key

        self.topic = sns.Topic(
            self, "BatchAlerts", master_key=key, enforce_ssl=True, display_name="ReturnGuard batch scoring"
        )
        # what fails into a dead-letter queue here, by queue: the monitoring stack alarms on each
        self.dead_letters: list[tuple[str, sqs.IQueue]] = []
        if config.alert_email:
            alert_dead_letters = dead_letter_queue(
                self, "AlertDeadLetters", key=key, of="the batch alert e-mail subscription"
            )
            self.dead_letters.append(("the batch alert e-mail subscription", alert_dead_letters))
            self.topic.add_subscription(
                subscriptions.EmailSubscription(config.alert_email, dead_letter_queue=alert_dead_letters)
            )

        # --- the small-file route: one function, three steps ---------------------------------------------
        pandas_layer = lambda_.LayerVersion.from_layer_version_arn(
            self,
            "AwsSdkPandas",
            Fn.sub(
                "{{resolve:ssm:/aws/service/aws-sdk-pandas/"
                + AWS_SDK_PANDAS_VERSION
                + "/${AWS::Region}/py3.12/x86_64/layer-arn}}"
            ),
        )
        environment = {
            "RG_LAKE_BUCKET": lake.bucket_name,
            "RG_FLAGGED_TABLE": props.flagged_table.table_name,
            "RG_IDEMPOTENCY_TABLE": props.claims_table.table_name,
            "RG_MODEL_PREFIX": MODEL_PREFIX,
            "RG_SMALL_FILE_BYTES": str(config.batch_small_file_mb * 1024 * 1024),
            "RG_CLAIM_LEASE_S": str(int(STATE_MACHINE_TIMEOUT.to_seconds())),
            # No xgboost in the Lambda (with scipy it would not fit the 250 MB limit beside the layer):
            # returnguard.trees scores and explains, the same numbers to 1e-6.
            "RG_SCORER": "trees",
            "POWERTOOLS_SERVICE_NAME": "returnguard-batch",
            "POWERTOOLS_LOG_LEVEL": config.log_level,
        }
        self.function = PythonFunction(
            self,
            "BatchFile",
            config=config,
            key=key,
            code_folder=lambda_staging_folder("batch_file", packages=("batch",)),
            memory_size=FUNCTION_MEMORY_MB,
            timeout=FUNCTION_TIMEOUT,
            description="Batch scoring: claim, validate and convert, score one uploaded transactions file",
            environment=environment,
            extra_layers=[pandas_layer],
        )
        self._grant_file_steps(self.function.role, props)
        sync_invoke = (
            "Invoked synchronously by the batch state machine (Lambda integration), which catches the error, "
            "releases the file's claim and fails the execution; a DLQ applies to asynchronous invocations only."
        )
        suppress(self.function.function, "Serverless-LambdaDLQ", sync_invoke)
        suppress(self.function.function, "NIST.800.53.R5-LambdaDLQ", sync_invoke)
        suppress(
            self.function.function,
            "NIST.800.53.R5-LambdaConcurrency",
            "A few calls per uploaded file; reserving concurrency takes it from the account's unreserved pool, "
            "which must stay >= 10 (new accounts have a quota of 10).",
        )
        suppress(
            self.function.function,
            "NIST.800.53.R5-LambdaInsideVPC",
            "Reaches only S3 and DynamoDB over TLS with IAM authentication and no private resource; a VPC "
            "would add NAT or endpoints and protect nothing more.",
        )
        suppress(
            self.function.role,
            "AwsSolutions-IAM5",
            "Object wildcards are the batch prefixes of the lake this function reads or writes (incoming/batch/, "
            "models/payments/, processed/payments-batch/, processed/predictions/payments/, "
            "quarantine/payments-batch/): file names are chosen by uploaders and digests; KMS data-key actions "
            "on the stage key.",
            applies_to=_iam5_patterns(),
        )

        # --- the large-file route: a Glue job running the same steps ------------------------------------
        self.glue_role = iam.Role(
            self,
            "GlueRole",
            assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
            description=f"{config.prefix} batch scoring Glue job",
        )
        self._grant_file_steps(self.glue_role, props)
        self.glue_role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:AssociateKmsKey"],
                resources=[f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:/aws-glue/*"],
            )
        )
        self.glue_role.add_to_policy(
            iam.PolicyStatement(
                actions=["glue:GetSecurityConfiguration"],
                resources=["*"],  # no resource-level permission
            )
        )
        self.glue_role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": "Glue"}},
            )
        )
        security = props.security_configuration_name
        # Glue writes this role's job output/error logs into groups named after the security configuration and
        # the role; created here with retention and the stage key, so Glue does not create them unmanaged.
        job_logs = [
            log_group(self, id_, config=config, key=key, name=Fn.join("", parts))
            for id_, parts in (
                (
                    "JobOutputLogs",
                    ["/aws-glue/jobs/", security, "-role/", self.glue_role.role_name, "/output"],
                ),
                ("JobErrorLogs", ["/aws-glue/jobs/", security, "-role/", self.glue_role.role_name, "/error"]),
            )
        ]
        script = assets.Asset(self, "BatchScoreScript", path=str(ROOT / "glue_jobs" / "batch_score.py"))
        code = assets.Asset(self, "BatchCode", path=str(packages_zip(("returnguard", "batch"))))
        for asset in (script, code):
            grant_asset_read(asset, self.glue_role)
        self.job_name = f"{config.prefix}-batch-score"
        self.job = glue.CfnJob(
            self,
            "BatchScoreJob",
            name=self.job_name,
            description="Batch scoring of a large uploaded transactions file: validate, convert, score",
            role=self.glue_role.role_arn,
            glue_version="5.0",
            worker_type="G.2X",  # the engine runs on the driver: 8 vCPU, 32 GB for files beyond the Lambda's
            number_of_workers=2,
            timeout=180,
            max_retries=0,  # the state machine handles failure (releases the claim)
            security_configuration=security,
            command=glue.CfnJob.JobCommandProperty(
                name="glueetl", python_version="3", script_location=script.s3_object_url
            ),
            execution_property=glue.CfnJob.ExecutionPropertyProperty(max_concurrent_runs=10),
            default_arguments={
                "--extra-py-files": code.s3_object_url,
                "--additional-python-modules": GLUE_XGBOOST,
                "--enable-metrics": "true",
                "--enable-continuous-cloudwatch-log": "true",
                "--lake_bucket": lake.bucket_name,
                "--flagged_table": props.flagged_table.table_name,
                "--claims_table": props.claims_table.table_name,
                "--model_prefix": MODEL_PREFIX,
                "--region": self.region,
                "--file": "{}",  # set per run by the state machine
            },
        )
        for group in job_logs:
            self.job.node.add_dependency(group)
        cross_stack = (
            "The job runs under the Etl stack's security configuration (passed by reference): CloudWatch logs "
            "SSE-KMS and job bookmarks CSE-KMS with the stage key; cdk-nag cannot follow a reference to "
            "another stack's configuration."
        )
        suppress(self.job, "AwsSolutions-GL1", cross_stack)
        suppress(self.job, "AwsSolutions-GL3", cross_stack)
        suppress(
            self.glue_role,
            "AwsSolutions-IAM5",
            "Object wildcards are the batch prefixes of the lake the job reads or writes (as the batch function) "
            "and the two CDK assets it runs; /aws-glue/* log groups; KMS data-key actions on the stage key; "
            "glue:GetSecurityConfiguration and cloudwatch:PutMetricData (namespace-conditioned) have no "
            "resource-level permissions.",
            applies_to=[
                *_iam5_patterns(),
                "Resource::*",
                {"regex": "/^Resource::arn:.*:log-group:\\/aws-glue\\/\\*$/"},
            ],
        )

        # --- the predictions table Athena queries --------------------------------------------------------
        self.predictions_table = glue.CfnTable(
            self,
            "PredictionsTable",
            catalog_id=self.account,
            database_name=props.database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=PREDICTIONS_TABLE,
                description="Batch scoring: one row per uploaded transaction (returnguard.batch.PREDICTION_COLUMNS)",
                table_type="EXTERNAL_TABLE",
                parameters={"classification": "parquet", "EXTERNAL": "TRUE"},
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    location=lake.s3_url_for_object(PREDICTIONS_PREFIX),
                    input_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                    output_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library="org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
                    ),
                    columns=[glue.CfnTable.ColumnProperty(name=n, type=t) for n, t in PREDICTION_COLUMNS],
                ),
            ),
        )

        # --- the state machine ---------------------------------------------------------------------------
        self.state_machine = self._state_machine(config, props)
        rule = events.Rule(
            self,
            "FileUploaded",
            description="A transactions file under the lake's incoming/batch/ starts batch scoring",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [lake.bucket_name]},
                    "object": {"key": [{"prefix": INCOMING_PREFIX}]},
                },
            ),
        )
        upload_dead_letters = dead_letter_queue(
            self, "UploadEventDeadLetters", key=key, of="the batch upload rule"
        )
        self.dead_letters.append(("the batch upload rule", upload_dead_letters))
        rule.add_target(targets.SfnStateMachine(self.state_machine, dead_letter_queue=upload_dead_letters))

    def _grant_file_steps(self, role: iam.IRole, props: BatchProps) -> None:
        lake = props.lake
        for prefix in (INCOMING_PREFIX, MODEL_PREFIX, WORK_PREFIX):
            lake.grant_read(role, f"{prefix}*")
        for prefix in (WORK_PREFIX, PREDICTIONS_PREFIX, QUARANTINE_PREFIX):
            lake.grant_put(role, f"{prefix}*")
        role.add_to_principal_policy(  # a quarantined file leaves incoming/ (copied first; the lake is versioned)
            iam.PolicyStatement(
                actions=["s3:DeleteObject"], resources=[lake.arn_for_objects(f"{INCOMING_PREFIX}*")]
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["dynamodb:BatchWriteItem"], resources=[props.flagged_table.table_arn]
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
                resources=[props.claims_table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["payments-batch#*"]}},
            )
        )
        props.key.grant_encrypt_decrypt(role)

    def _state_machine(self, config: StageConfig, props: BatchProps) -> sfn.StateMachine:
        function = self.function.function

        def step(id_: str, name: str, result: str) -> tuple[tasks.LambdaInvoke, sfn.Pass]:
            invoke = tasks.LambdaInvoke(
                self,
                id_,
                lambda_function=function,
                payload=sfn.TaskInput.from_object({"step": name, "file.$": "$.file"}),
                result_path=f"$.{id_.lower()}_call",
            )
            keep = sfn.Pass(
                self, f"{id_}Result", input_path=f"$.{id_.lower()}_call.Payload", result_path=result
            )
            return invoke, keep

        claim = tasks.LambdaInvoke(
            self,
            "Claim",
            lambda_function=function,
            payload=sfn.TaskInput.from_object({"step": "claim", "key.$": "$.detail.object.key"}),
            result_path="$.claim_call",
        )
        file = sfn.Pass(self, "File", input_path="$.claim_call.Payload", result_path="$.file")
        convert, converted = step("Convert", "convert", "$.outcome")
        score, scored = step("Score", "score", "$.outcome")
        glue_job = tasks.GlueStartJobRun(
            self,
            "ScoreInGlue",
            glue_job_name=self.job_name,
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            arguments=sfn.TaskInput.from_object(
                {"--file": sfn.JsonPath.json_to_string(sfn.JsonPath.object_at("$.file"))}
            ),
            result_path="$.glue",
            task_timeout=sfn.Timeout.duration(Duration.hours(3)),
        )
        read_outcome = tasks.CallAwsService(
            self,
            "ReadGlueOutcome",
            service="s3",
            action="getObject",
            parameters={"Bucket": props.lake.bucket_name, "Key.$": "$.file.summary_key"},
            iam_resources=[props.lake.arn_for_objects(f"{WORK_PREFIX}*")],
            result_selector={"document.$": "States.StringToJson($.Body)"},
            result_path="$.glue_outcome",
        )
        glue_outcome = sfn.Pass(
            self, "GlueOutcome", input_path="$.glue_outcome.document", result_path="$.outcome"
        )
        publish = tasks.SnsPublish(
            self,
            "PublishAlert",
            topic=self.topic,
            subject=sfn.JsonPath.string_at("$.outcome.alert.subject"),
            message=sfn.TaskInput.from_json_path_at("$.outcome.alert.message"),
            message_per_subscription_type=True,
            result_path="$.published",
        )
        claim_key = {"id": tasks.DynamoAttributeValue.from_string(sfn.JsonPath.string_at("$.file.claim_id"))}
        mark_done = tasks.DynamoUpdateItem(
            self,
            "MarkDone",
            table=props.claims_table,
            key=claim_key,
            update_expression="SET #s = :done, outcome = :outcome",
            expression_attribute_names={"#s": "status"},
            expression_attribute_values={
                ":done": tasks.DynamoAttributeValue.from_string("done"),
                ":outcome": tasks.DynamoAttributeValue.from_string(
                    sfn.JsonPath.string_at("$.outcome.status")
                ),
            },
            result_path="$.done",
        )
        mark_done.add_retry(errors=["States.ALL"], max_attempts=3, interval=Duration.seconds(2))
        release = tasks.DynamoDeleteItem(
            self, "ReleaseClaim", table=props.claims_table, key=claim_key, result_path="$.released"
        )
        failed = sfn.Fail(
            self,
            "BatchFailed",
            error="BatchFailed",
            cause="A step failed; the file holds no claim (released, or never taken), so uploading it again "
            "retries it.",
        )
        # a run that fails (no model published yet, a Glue job that died) still tells the topic: one alert
        # with the file and the error, never silence
        failure = sfn.Pass(
            self,
            "FailureAlert",
            parameters={
                "kind": BATCH_FAILED,
                "key.$": "$.file.key",
                "file_digest.$": "$.file.digest",
                "error.$": "$.error.Error",
                "cause.$": "$.error.Cause",
            },
            result_path="$.failure",
        )
        publish_failure = tasks.SnsPublish(
            self,
            "PublishFailure",
            topic=self.topic,
            subject=FAILURE_SUBJECT,
            message=sfn.TaskInput.from_text(sfn.JsonPath.json_to_string(sfn.JsonPath.object_at("$.failure"))),
            result_path="$.failure_published",
        )
        release.next(failure).next(publish_failure).next(failed)
        # a claim that fails has claimed nothing (no model published yet: error ModelNotPublished, whose
        # cause says how to publish one); the same alert, named by the uploaded key alone
        claim_failure = sfn.Pass(
            self,
            "ClaimFailureAlert",
            parameters={
                "kind": BATCH_FAILED,
                "key.$": "$.detail.object.key",
                "error.$": "$.error.Error",
                "cause.$": "$.error.Cause",
            },
            result_path="$.failure",
        )
        claim.add_catch(claim_failure, errors=["States.ALL"], result_path="$.error")
        claim_failure.next(publish_failure)
        for task in (convert, score, glue_job, read_outcome, publish):
            task.add_catch(release, errors=["States.ALL"], result_path="$.error")

        publish.next(mark_done).next(sfn.Succeed(self, "Done"))
        converted.next(
            sfn.Choice(self, "Valid")
            .when(sfn.Condition.string_equals("$.outcome.status", "valid"), score.next(scored).next(publish))
            .otherwise(publish)
        )
        route = (
            sfn.Choice(self, "Route")
            .when(
                sfn.Condition.string_equals("$.file.route", "glue"),
                glue_job.next(read_outcome).next(glue_outcome).next(publish),
            )
            .otherwise(convert.next(converted))
        )
        seen = (
            sfn.Choice(self, "SeenBefore")
            .when(
                sfn.Condition.boolean_equals("$.file.duplicate", True),
                sfn.Succeed(
                    self,
                    "AlreadyProcessed",
                    comment="Same bytes as a file processed before: no rows, no alert",
                ),
            )
            .otherwise(route)
        )
        definition = claim.next(file).next(seen)

        logs = log_group(self, "Logs", config=config, key=props.key)
        machine = sfn.StateMachine(
            self,
            "BatchScoring",
            state_machine_name=f"{config.prefix}-batch-scoring",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            timeout=STATE_MACHINE_TIMEOUT,
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=logs, level=sfn.LogLevel.ALL, include_execution_data=False),
        )
        props.key.grant_encrypt_decrypt(machine.role)
        suppress(
            machine,
            "AwsSolutions-IAM5",
            "Step Functions' service integrations: X-Ray and log delivery have no resource-level permissions; "
            "the batch function's versions (<function ARN>:*, how the Lambda integration grants invoke); "
            "summary objects under processed/payments-batch/ (one per file digest); glue job runs of one job; "
            "KMS data-key actions on the stage key.",
            applies_to=[
                "Resource::*",
                f"Resource::<{logical_id(function)}.Arn>:*",
                "Action::kms:GenerateDataKey*",
                "Action::kms:ReEncrypt*",
                {"regex": "/^Resource::.*processed\\/payments-batch\\/\\*$/"},
            ],
        )
        checkov_skip(
            machine.role.node.find_child("DefaultPolicy").node.default_child,
            "CKV_AWS_108",
            "The flagged read is s3:GetObject on processed/payments-batch/* only: the summary the Glue job "
            "writes for the file it scored; no action here reads data on '*'.",
        )
        return machine


def _iam5_patterns() -> list:
    return [
        "Action::s3:GetBucket*",
        "Action::s3:GetObject*",
        "Action::s3:List*",
        "Action::s3:Abort*",
        "Action::s3:PutObject*",
        "Action::kms:GenerateDataKey*",
        "Action::kms:ReEncrypt*",
        {
            "regex": "/^Resource::.*Lake.*\\/(incoming\\/batch|models\\/payments\\/current|processed\\/payments-batch|"
            "processed\\/predictions\\/payments|quarantine\\/payments-batch)\\/\\*$/"
        },
        {"regex": "/^Resource::arn:<AWS::Partition>:s3:::.*\\/\\*$/"},
    ]
