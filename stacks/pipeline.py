"""Pipeline stack: the retraining state machine (Glue features -> find the serving model -> SageMaker
training, which also scores the serving model on the same mature window, and retrains and gates the
return lane against the serving return model the same way -> gate -> register with the
decision -> promote onto the endpoint if approved, or, when only a retrained lane's candidate is
approved, register and promote the serving archive with that lane replaced -> wait for InService ->
record) and its EventBridge schedule (disabled in dev)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from returnguard.aws.gate_record import GATE_DECISIONS_PREFIX
from returnguard.aws.lane_promotion import LANE_PROMOTIONS_PREFIX
from returnguard.aws.promotion import ExperimentRunning
from returnguard.aws.serving_profile import PROFILES_PREFIX
from stacks.config import StageConfig
from stacks.constructs import PythonFunction, dead_letter_queue, log_group, logical_id, suppress
from stacks.ml import INFERENCE_PROGRAM, RETURN_TRAINING_DATA_PREFIX, TRAINING_DATA_PREFIX, TRAINING_PROGRAM
from stacks.packaging import lambda_staging_folder

SERVING_METRICS_KEY = "models/metadata/serving-metrics.json"
# How often the state machine looks at an endpoint being updated, and the states that mean "not yet".
ENDPOINT_POLL_SECONDS = 60
EXPERIMENT_RUNNING = ExperimentRunning.__name__  # the promote function's error while an experiment runs
ENDPOINT_IN_PROGRESS = ("Creating", "Updating", "SystemUpdating", "RollingBack")
# Seam for seed 003's batch path (not built yet): an upload under this prefix of the lake ("Object Created"
# through EventBridge, after `event_bridge_enabled=True` on the lake) starts a batch-scoring state machine
# defined next to the retraining one, which scores the file, writes to processed/predictions/ and DynamoDB and
# publishes high-risk rows to the alerts topic.
BATCH_UPLOAD_PREFIX = "incoming/batch/"


@dataclass(frozen=True)
class PipelineProps:
    config: StageConfig
    key: kms.IKey
    lake: s3.IBucket
    features_job_name: str
    image_uri: str
    source_dir_url: str
    training_role: iam.IRole
    serving_role: iam.IRole
    model_package_group_name: str
    endpoint_name: str
    bootstrap_endpoint_config_arn: str  # the Ml stack's config: the one a first promotion copies
    bootstrap_model_arn: str  # the Ml stack's model: the first champion the gate compares with


class PipelineStack(Stack):
    def __init__(self, scope: Construct, id: str, *, props: PipelineProps, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        config = props.config
        sm = f"arn:{self.partition}:sagemaker:{self.region}:{self.account}"
        endpoint_arn = f"{sm}:endpoint/{props.endpoint_name}"

        features = tasks.GlueStartJobRun(
            self,
            "BuildFeatures",
            glue_job_name=props.features_job_name,
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            result_path="$.glue",
            task_timeout=sfn.Timeout.duration(Duration.hours(2)),
        )
        # The serving model (the champion): the first production variant of the endpoint's current config.
        # Its model.tar.gz goes to the training job, which scores it on the candidate's test window.
        serving_endpoint = tasks.CallAwsService(
            self,
            "ServingEndpoint",
            service="sagemaker",
            action="describeEndpoint",
            parameters={"EndpointName": props.endpoint_name},
            iam_resources=[endpoint_arn],
            result_selector={"config_name.$": "$.EndpointConfigName"},
            result_path="$.champion_endpoint",
        )
        serving_config = tasks.CallAwsService(
            self,
            "ServingConfig",
            service="sagemaker",
            action="describeEndpointConfig",
            parameters={"EndpointConfigName.$": "$.champion_endpoint.config_name"},
            iam_resources=[f"{sm}:endpoint-config/{config.prefix}-*", props.bootstrap_endpoint_config_arn],
            # ArrayGetItem, not $.ProductionVariants[0]: moto's interpreter answers an indexed path with a
            # list, and both mean the first variant's model in AWS.
            result_selector={"model_name.$": "States.ArrayGetItem($.ProductionVariants[*].ModelName, 0)"},
            result_path="$.champion_config",
        )
        serving_model = tasks.CallAwsService(
            self,
            "ServingModel",
            service="sagemaker",
            action="describeModel",
            parameters={"ModelName.$": "$.champion_config.model_name"},
            iam_resources=[f"{sm}:model/{config.prefix}-*", props.bootstrap_model_arn],
            result_selector={
                "model_name.$": "$.ModelName",
                "model_data_url.$": "$.PrimaryContainer.ModelDataUrl",
            },
            result_path="$.champion",
        )
        train = tasks.SageMakerCreateTrainingJob(
            self,
            "Train",
            training_job_name=sfn.JsonPath.format(
                "{}-{}", config.prefix, sfn.JsonPath.string_at("$$.Execution.Name")
            ),
            # Not mutable here: the task would add a write grant (DeleteObject* included) on the output prefix;
            # the ML stack grants the training role what it needs.
            role=iam.Role.from_role_arn(self, "TrainingRole", props.training_role.role_arn, mutable=False),
            algorithm_specification=tasks.AlgorithmSpecification(
                training_image=tasks.DockerImage.from_registry(props.image_uri),
                training_input_mode=tasks.InputMode.FILE,
                metric_definitions=[
                    tasks.MetricDefinition(name="validation:auc", regex="validation_auc=([0-9.]+)"),
                    tasks.MetricDefinition(name="validation:pr_auc", regex="validation_pr_auc=([0-9.]+)"),
                ],
            ),
            hyperparameters={
                "sagemaker_program": TRAINING_PROGRAM,
                "sagemaker_submit_directory": props.source_dir_url,
                # the gate's bounds, for the return lane the job retrains and gates itself
                **{f"gate_{name}": str(value) for name, value in config.gate.as_dict().items()},
            },
            input_data_config=[
                tasks.Channel(
                    channel_name="train",
                    data_source=tasks.DataSource(
                        s3_data_source=tasks.S3DataSource(
                            s3_location=tasks.S3Location.from_bucket(props.lake, TRAINING_DATA_PREFIX)
                        )
                    ),
                ),
                # The return lane's table: the job retrains the return model, gates it against the
                # serving one and keeps the winner in the archive (training/train.py resolve_lanes).
                tasks.Channel(
                    channel_name="return",
                    data_source=tasks.DataSource(
                        s3_data_source=tasks.S3DataSource(
                            s3_location=tasks.S3Location.from_bucket(props.lake, RETURN_TRAINING_DATA_PREFIX)
                        )
                    ),
                ),
                tasks.Channel(
                    channel_name="champion",
                    data_source=tasks.DataSource(
                        s3_data_source=tasks.S3DataSource(
                            s3_location=tasks.S3Location.from_json_expression("$.champion.model_data_url"),
                            s3_data_type=tasks.S3DataType.S3_PREFIX,
                        )
                    ),
                ),
            ],
            output_data_config=tasks.OutputDataConfig(
                s3_output_location=tasks.S3Location.from_bucket(props.lake, "models/artifacts/"),
                encryption_key=props.key,
            ),
            resource_config=tasks.ResourceConfig(
                instance_count=1,
                instance_type=_instance("ml.m5.xlarge"),
                volume_size=_size(10),
                volume_encryption_key=props.key,
            ),
            stopping_condition=tasks.StoppingCondition(max_runtime=Duration.hours(2)),
            # Wait for the job: the gate reads the model it wrote, which exists only once it has finished.
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            result_path="$.training",
        )
        gate_function = PythonFunction(
            self,
            "Gate",
            config=config,
            key=props.key,
            code_folder=lambda_staging_folder("gate"),
            memory_size=1024,  # holds the candidate's model.tar.gz in memory to read evaluation.json
            timeout=Duration.seconds(120),
            description="Retraining: the promotion gate (candidate vs serving model on the same mature window)",
            environment={
                "RG_LAKE_BUCKET": props.lake.bucket_name,
                "RG_GATE_BOUNDS": json.dumps(config.gate.as_dict(), sort_keys=True),
                "POWERTOOLS_SERVICE_NAME": "returnguard-gate",
                "POWERTOOLS_LOG_LEVEL": config.log_level,
            },
        )
        gate_function.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[props.lake.arn_for_objects("models/artifacts/*")]
            )
        )
        gate_function.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"],
                resources=[
                    props.lake.arn_for_objects(f"{GATE_DECISIONS_PREFIX}*"),
                    # a lane promotion's archive (returnguard.aws.lane_promotion), one folder per execution
                    props.lake.arn_for_objects(f"{LANE_PROMOTIONS_PREFIX}*"),
                ],
            )
        )
        props.key.grant_encrypt_decrypt(gate_function.role)
        _suppress_step_function(gate_function)
        suppress(
            gate_function.role,
            "AwsSolutions-IAM5",
            "Reads any training job's model archive under the lake's models/artifacts/ (one folder per job, "
            "named per execution; the serving model's too, the base of a lane promotion), writes one decision "
            f"record per execution under {GATE_DECISIONS_PREFIX} and at most one lane-promotion archive per "
            f"execution under {LANE_PROMOTIONS_PREFIX}; KMS data-key actions on the stage key.",
            applies_to=[
                "Action::kms:GenerateDataKey*",
                "Action::kms:ReEncrypt*",
                {
                    "regex": "/^Resource::<.*>\\/models\\/(artifacts|artifacts\\/lane-promotions|metadata\\/gate-decisions)\\/\\*$/"
                },
            ],
        )
        gate = tasks.LambdaInvoke(
            self,
            "GateCandidate",
            lambda_function=gate_function.function,
            payload=sfn.TaskInput.from_object(
                {
                    "ModelArtifact": sfn.JsonPath.string_at("$.training.ModelArtifacts.S3ModelArtifacts"),
                    "Execution": sfn.JsonPath.string_at("$$.Execution.Name"),
                    "ServingArtifact": sfn.JsonPath.string_at("$.champion.model_data_url"),
                }
            ),
            result_selector={
                "approved.$": "$.Payload.approved",
                "approval_status.$": "$.Payload.approval_status",
                "reasons.$": "$.Payload.reasons",
                "metadata.$": "$.Payload.metadata",
                "record_url.$": "$.Payload.record_url",
                # what is served if anything is: the candidate's archive, or a lane promotion's
                "lanes_promoted.$": "$.Payload.lanes_promoted",
                "serve_artifact.$": "$.Payload.serve_artifact",
                "serve_metadata.$": "$.Payload.serve_metadata",
            },
            result_path="$.gate",
        )

        image_container = {
            "Image": props.image_uri,
            "ModelDataUrl.$": "$.training.ModelArtifacts.S3ModelArtifacts",
            "Environment": {
                "SAGEMAKER_PROGRAM": INFERENCE_PROGRAM,
                "SAGEMAKER_SUBMIT_DIRECTORY": props.source_dir_url,
            },
        }
        # The archive promoted: the candidate's when approved, a lane promotion's otherwise.
        served_container = {**image_container, "ModelDataUrl.$": "$.gate.serve_artifact"}
        register = tasks.CallAwsService(
            self,
            "RegisterModel",
            service="sagemaker",
            action="createModelPackage",
            parameters={
                "ModelPackageGroupName": props.model_package_group_name,
                # Every candidate is registered, with the gate's decision as its status and its numbers.
                "ModelApprovalStatus.$": "$.gate.approval_status",
                "CustomerMetadataProperties.$": "$.gate.metadata",
                "ModelMetrics": {
                    "ModelQuality": {
                        "Statistics": {"ContentType": "application/json", "S3Uri.$": "$.gate.record_url"}
                    }
                },
                "InferenceSpecification": {
                    "Containers": [image_container],
                    "SupportedContentTypes": ["application/json", "text/csv"],
                    "SupportedResponseMIMETypes": ["application/json"],
                },
            },
            iam_resources=[
                f"{sm}:model-package/{props.model_package_group_name}/*",
                f"{sm}:model-package-group/{props.model_package_group_name}",
            ],
            result_path="$.package",
        )
        # The order candidate rejected, a retrained lane's approved: the serving archive with that lane
        # replaced is registered as its own Approved package (the candidate stays Rejected) and promoted.
        register_lanes = tasks.CallAwsService(
            self,
            "RegisterLanePromotion",
            service="sagemaker",
            action="createModelPackage",
            parameters={
                "ModelPackageGroupName": props.model_package_group_name,
                "ModelApprovalStatus": "Approved",
                "CustomerMetadataProperties.$": "$.gate.serve_metadata",
                "ModelMetrics": {
                    "ModelQuality": {
                        "Statistics": {"ContentType": "application/json", "S3Uri.$": "$.gate.record_url"}
                    }
                },
                "InferenceSpecification": {
                    "Containers": [served_container],
                    "SupportedContentTypes": ["application/json", "text/csv"],
                    "SupportedResponseMIMETypes": ["application/json"],
                },
            },
            iam_resources=[
                f"{sm}:model-package/{props.model_package_group_name}/*",
                f"{sm}:model-package-group/{props.model_package_group_name}",
            ],
            result_path="$.package",  # the package being promoted, as RegisterModel's is when approved
        )
        model_name = sfn.JsonPath.format("{}-{}", config.prefix, sfn.JsonPath.string_at("$$.Execution.Name"))
        create_model = tasks.CallAwsService(
            self,
            "CreateModel",
            service="sagemaker",
            action="createModel",
            parameters={
                "ModelName": model_name,
                "ExecutionRoleArn": props.serving_role.role_arn,
                "PrimaryContainer": served_container,
            },
            iam_resources=[f"{sm}:model/{config.prefix}-*"],
            additional_iam_statements=[
                iam.PolicyStatement(
                    actions=["iam:PassRole"],
                    resources=[props.serving_role.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
                )
            ],
            result_path="$.model",
        )
        promote_function = PythonFunction(
            self,
            "Promote",
            config=config,
            key=props.key,
            code_folder=lambda_staging_folder("promote"),
            memory_size=256,
            timeout=Duration.seconds(60),
            description="Retraining: serve a new model with a copy of the endpoint's current config",
            environment={
                "RG_ENDPOINT_NAME": props.endpoint_name,
                "RG_LAKE_BUCKET": props.lake.bucket_name,
                "POWERTOOLS_SERVICE_NAME": "returnguard-promote",
                "POWERTOOLS_LOG_LEVEL": config.log_level,
            },
        )
        serving_configs = [
            f"{sm}:endpoint-config/{config.prefix}-*",
            props.bootstrap_endpoint_config_arn,
        ]
        promote_function.role.add_to_policy(
            iam.PolicyStatement(actions=["sagemaker:DescribeEndpoint"], resources=[endpoint_arn])
        )
        promote_function.role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeEndpointConfig", "sagemaker:ListTags"], resources=serving_configs
            )
        )
        promote_function.role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:CreateEndpointConfig", "sagemaker:AddTags"],
                resources=[serving_configs[0]],
            )
        )
        promote_function.role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:UpdateEndpoint"], resources=[endpoint_arn, serving_configs[0]]
            )
        )
        # A config with KmsKeyId (prod: storage and data capture) needs the caller to let SageMaker use the key.
        promote_function.role.add_to_policy(
            iam.PolicyStatement(
                actions=["kms:CreateGrant", "kms:DescribeKey"],
                resources=[props.key.key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        )
        # Before the endpoint changes: the new model's serving profile (thresholds, fallback) from its
        # archive to the lake, where the score function reads it (returnguard.aws.serving_profile).
        promote_function.role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeModel"], resources=[f"{sm}:model/{config.prefix}-*"]
            )
        )
        promote_function.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[props.lake.arn_for_objects("models/artifacts/*")]
            )
        )
        promote_function.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"], resources=[props.lake.arn_for_objects(f"{PROFILES_PREFIX}*")]
            )
        )
        props.key.grant_encrypt_decrypt(promote_function.role)
        _suppress_step_function(promote_function)
        suppress(
            promote_function.role,
            "AwsSolutions-IAM5",
            "Endpoint configs and models the pipeline creates are named <prefix>-<execution name> (one per "
            "run), so their ARNs are only known as this stage's prefix followed by a wildcard; it reads any "
            "training job's model archive under the lake's models/artifacts/ (one folder per job) and "
            f"writes one serving profile per model version under {PROFILES_PREFIX}; KMS data-key actions "
            "on the stage key.",
            applies_to=[
                "Action::kms:GenerateDataKey*",
                "Action::kms:ReEncrypt*",
                {"regex": "/^Resource::arn:<AWS::Partition>:sagemaker:.*:(endpoint-config|model)\\/.*\\*$/"},
                {"regex": "/^Resource::<.*>\\/models\\/(artifacts|serving)\\/\\*$/"},
            ],
        )
        promote_endpoint = tasks.LambdaInvoke(
            self,
            "PromoteEndpoint",
            lambda_function=promote_function.function,
            payload=sfn.TaskInput.from_object({"ModelName": model_name, "EndpointConfigName": model_name}),
            result_selector={
                "endpoint_config_name.$": "$.Payload.EndpointConfigName",
                "previous_endpoint_config_name.$": "$.Payload.PreviousEndpointConfigName",
            },
            result_path="$.promotion",
        )
        wait = sfn.Wait(
            self, "WaitForEndpoint", time=sfn.WaitTime.duration(Duration.seconds(ENDPOINT_POLL_SECONDS))
        )
        describe_endpoint = tasks.CallAwsService(
            self,
            "DescribeEndpoint",
            service="sagemaker",
            action="describeEndpoint",
            parameters={"EndpointName": props.endpoint_name},
            iam_resources=[endpoint_arn],
            result_selector={"status.$": "$.EndpointStatus", "config_name.$": "$.EndpointConfigName"},
            result_path="$.endpoint",
        )
        endpoint_failed = sfn.Fail(
            self,
            "EndpointUpdateFailed",
            error="EndpointUpdateFailed",
            cause="The endpoint did not reach InService on the new config; SageMaker kept or rolled back "
            "to the previous one, whose serving metrics stay recorded.",
        )
        record = tasks.CallAwsService(
            self,
            "RecordServingMetrics",
            service="s3",
            action="putObject",
            parameters={
                "Bucket": props.lake.bucket_name,
                "Key": SERVING_METRICS_KEY,
                "Body.$": "States.JsonToString($.gate.serve_metadata)",
                "ContentType": "application/json",
            },
            iam_resources=[props.lake.arn_for_objects(SERVING_METRICS_KEY)],
            result_path="$.recorded",
        )
        # Record the new serving metrics only once the endpoint serves the new config: SageMaker rolls a
        # failed update back to the old config and reports InService again, so the config name counts.
        record_after_update = sfn.Choice(self, "EndpointUpdated")
        record_after_update.when(
            sfn.Condition.and_(
                sfn.Condition.string_equals("$.endpoint.status", "InService"),
                sfn.Condition.string_equals_json_path(
                    "$.endpoint.config_name", "$.promotion.endpoint_config_name"
                ),
            ),
            record,
        ).when(
            sfn.Condition.or_(
                *(sfn.Condition.string_equals("$.endpoint.status", status) for status in ENDPOINT_IN_PROGRESS)
            ),
            wait,
        ).otherwise(endpoint_failed)
        # An experiment on the endpoint (`returnguard models experiment start`): the promote function
        # refuses, as `returnguard models promote` does. The candidate stays registered as Approved, the
        # refusal is added to its metadata, and the run succeeds: promote it by hand once the experiment
        # is stopped.
        refusal = sfn.Pass(
            self,
            "PromotionRefused",
            result=sfn.Result.from_object({"promotion_refused": "experiment_running"}),
            result_path="$.refusal",
        )
        record_refusal = tasks.CallAwsService(
            self,
            "RecordRefusal",
            service="sagemaker",
            action="updateModelPackage",
            parameters={
                "ModelPackageArn.$": "$.package.ModelPackageArn",
                "ModelApprovalStatus": "Approved",  # unchanged: only an Approved package is promoted
                "CustomerMetadataProperties.$": "States.JsonMerge($.gate.serve_metadata, $.refusal, false)",
            },
            iam_resources=[f"{sm}:model-package/{props.model_package_group_name}/*"],
            result_path=sfn.JsonPath.DISCARD,
        )
        promote_endpoint.add_catch(refusal, errors=[EXPERIMENT_RUNNING], result_path="$.promotion_error")
        refusal.next(record_refusal).next(
            sfn.Succeed(
                self,
                "KeepServingModelDuringExperiment",
                comment="An experiment runs on the endpoint: the approved candidate is registered, not served",
            )
        )
        promote = create_model.next(promote_endpoint).next(wait).next(describe_endpoint)
        describe_endpoint.next(record_after_update)
        approved = (
            sfn.Choice(self, "Approved")
            .when(sfn.Condition.boolean_equals("$.gate.approved", True), promote)
            .when(
                sfn.Condition.boolean_equals("$.gate.lanes_promoted", True), register_lanes.next(create_model)
            )
            .otherwise(
                sfn.Succeed(
                    self,
                    "KeepServingModel",
                    comment="The gate rejected the candidate (registered as Rejected with its reasons) and "
                    "approved no retrained lane that could be served alone",
                )
            )
        )
        definition = (
            features.next(serving_endpoint)
            .next(serving_config)
            .next(serving_model)
            .next(train)
            .next(gate)
            .next(register)
            .next(approved)
        )

        logs = log_group(self, "Logs", config=config, key=props.key)
        self.state_machine = sfn.StateMachine(
            self,
            "Retraining",
            state_machine_name=f"{config.prefix}-retraining",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            timeout=Duration.hours(6),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=logs, level=sfn.LogLevel.ALL, include_execution_data=False),
        )
        props.key.grant_encrypt_decrypt(self.state_machine.role)
        self.schedule_dead_letters = dead_letter_queue(
            self, "ScheduleDeadLetters", key=props.key, of="the weekly retraining schedule"
        )
        events.Rule(
            self,
            "WeeklyRetraining",
            schedule=events.Schedule.rate(Duration.days(7)),
            enabled=config.retraining_schedule_enabled,
            targets=[
                targets.SfnStateMachine(self.state_machine, dead_letter_queue=self.schedule_dead_letters)
            ],
        )
        # The training task's grant is training-job/* (its name is set per execution); only this stage's
        # jobs, <prefix>-<execution name>, may be started, stopped or read.
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                actions=[
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                ],
                not_resources=[f"{sm}:training-job/{config.prefix}-*"],
            )
        )
        suppress(
            self.state_machine,
            "AwsSolutions-IAM5",
            "Step Functions' service integrations: X-Ray and log delivery have no resource-level permissions; "
            "models are named per execution under this stage's prefix; the training task's CDK grant is "
            "training-job/* (AddTags included), and a Deny limits Create/Describe/Stop to "
            "training-job/<prefix>-*; glue job runs of one job; model packages of one group; KMS data-key "
            "actions on the stage key; the promote and gate functions' versions (<function ARN>:*, how Step "
            "Functions' Lambda integration grants invoke); the serving model's config and model are this "
            "stage's <prefix>-* ones (or the bootstrap ones, named exactly).",
            applies_to=[
                "Resource::*",
                f"Resource::<{logical_id(promote_function.function)}.Arn>:*",
                f"Resource::<{logical_id(gate_function.function)}.Arn>:*",
                "Action::kms:GenerateDataKey*",
                "Action::kms:ReEncrypt*",
                {
                    "regex": "/^Resource::arn:<AWS::Partition>:sagemaker:.*:(training-job|model|endpoint-config)\\/.*\\*$/"
                },
                {"regex": "/^Resource::arn:<AWS::Partition>:sagemaker:.*:model-package\\/.*\\/\\*$/"},
            ],
        )
        self.state_machine_arn = self.state_machine.state_machine_arn


def _suppress_step_function(function: PythonFunction) -> None:
    """The findings every function the state machine calls shares, with why they do not apply."""
    sync_invoke = (
        "Invoked synchronously by the state machine (Lambda integration), which sees and handles the "
        "error; a DLQ applies to asynchronous invocations, which this function never gets."
    )
    suppress(function.function, "Serverless-LambdaDLQ", sync_invoke)
    suppress(function.function, "NIST.800.53.R5-LambdaDLQ", sync_invoke)
    suppress(
        function.function,
        "NIST.800.53.R5-LambdaConcurrency",
        "One call per retraining run (weekly); reserving concurrency takes it from the account's "
        "unreserved pool, which must stay >= 10 (new accounts have a quota of 10).",
    )
    suppress(
        function.function,
        "NIST.800.53.R5-LambdaInsideVPC",
        "Calls only AWS APIs (SageMaker, S3) over TLS with IAM authentication and reaches no private "
        "resource; a VPC would add NAT or interface endpoints and protect nothing more.",
    )


def _instance(name: str):
    from aws_cdk import aws_ec2 as ec2

    return ec2.InstanceType(name.removeprefix("ml."))


def _size(gb: int):
    from aws_cdk import Size

    return Size.gibibytes(gb)
