"""ML stack: SageMaker execution role, the bootstrap model from S3 file assets, endpoint config per stage,
the endpoint and the Model Package Group."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CfnMapping, CfnOutput, Fn, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as assets
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from stacks.cleanup import RetrainingCleanup
from stacks.config import XGBOOST_REGISTRIES, XGBOOST_VERSION, StageConfig
from stacks.constructs import (
    S3_KMS_GRANT_ACTIONS,
    checkov_skip,
    grant_asset_read,
    log_group,
    removal_policy,
    suppress,
)

INFERENCE_PROGRAM = "inference.py"
TRAINING_DATA_PREFIX = "processed/training-data/"
RETURN_TRAINING_DATA_PREFIX = "processed/return-training-data/"
MODEL_ARTIFACTS_PREFIX = "models/artifacts/"
DATA_CAPTURE_PREFIX = "models/data-capture/"
TRAINING_PROGRAM = "train.py"


@dataclass(frozen=True)
class MlProps:
    config: StageConfig
    key: kms.IKey
    lake: s3.IBucket


def xgboost_image(scope: Stack) -> str:
    """The XGBoost framework image of the stack's region, resolved by CloudFormation from a mapping."""
    mapping = CfnMapping(
        scope,
        "XgboostRegistry",
        mapping={region: {"account": account} for region, account in XGBOOST_REGISTRIES.items()},
        lazy=True,  # inlined when the region is known at synth, Fn::FindInMap when it is not
    )
    account = mapping.find_in_map(scope.region, "account")
    return Fn.join(
        "",
        [account, ".dkr.ecr.", scope.region, ".", scope.url_suffix, f"/sagemaker-xgboost:{XGBOOST_VERSION}"],
    )


class MlStack(Stack):
    def __init__(self, scope: Construct, id: str, *, props: MlProps, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        config = props.config
        self.image_uri = xgboost_image(self)
        self.model_artifact = assets.Asset(self, "ModelArtifact", path=str(config.model.model_tarball))
        self.source_dir = assets.Asset(self, "SourceDir", path=str(config.model.sourcedir_tarball))

        # Two roles: the serving role (models and endpoints: the bootstrap one here, retrained ones from the
        # pipeline) and the training role (the pipeline's training jobs), each reading only what it needs.
        self.serving_role = self._sagemaker_role("ServingRole", config, "models and endpoints", "Endpoints")
        grant_asset_read(self.model_artifact, self.serving_role)
        grant_asset_read(self.source_dir, self.serving_role)
        props.lake.grant_read(self.serving_role, f"{MODEL_ARTIFACTS_PREFIX}*")  # retrained models
        props.lake.grant_put(self.serving_role, f"{DATA_CAPTURE_PREFIX}*")  # realtime data capture
        props.key.grant_encrypt_decrypt(self.serving_role)

        self.training_role = self._sagemaker_role("TrainingRole", config, "training jobs", "TrainingJobs")
        grant_asset_read(self.source_dir, self.training_role)
        props.lake.grant_read(self.training_role, f"{TRAINING_DATA_PREFIX}*")
        props.lake.grant_read(self.training_role, f"{RETURN_TRAINING_DATA_PREFIX}*")
        # The gate's champion: the training job scores the serving model (bootstrap or retrained) too.
        grant_asset_read(self.model_artifact, self.training_role)
        props.lake.grant_read(self.training_role, f"{MODEL_ARTIFACTS_PREFIX}*")
        props.lake.grant_put(self.training_role, f"{MODEL_ARTIFACTS_PREFIX}*")
        props.key.grant_encrypt_decrypt(self.training_role)  # reads the data, encrypts volume and output
        self.training_role.add_to_policy(  # the training instance's encrypted volume
            iam.PolicyStatement(
                actions=["kms:CreateGrant"],
                resources=[props.key.key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": True}},
            )
        )
        self.role = self.serving_role

        self.model = sagemaker.CfnModel(
            self,
            "BootstrapModel",
            execution_role_arn=self.role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=self.image_uri,
                model_data_url=self.model_artifact.s3_object_url,
                environment={
                    "SAGEMAKER_PROGRAM": INFERENCE_PROGRAM,
                    "SAGEMAKER_SUBMIT_DIRECTORY": self.source_dir.s3_object_url,
                    "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
                    "RG_MODEL_VERSION": config.model.model_version,
                },
            ),
        )
        self.model.node.add_dependency(self.role)
        checkov_skip(
            self.model,
            "CKV_AWS_370",
            "No network isolation: the XGBoost framework container in script mode downloads sourcedir.tar.gz "
            "(SAGEMAKER_SUBMIT_DIRECTORY) from S3 when it starts, which network isolation blocks.",
        )

        endpoint = config.endpoint
        if endpoint.mode == "serverless":
            variant = sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name="primary",
                model_name=self.model.attr_model_name,
                serverless_config=sagemaker.CfnEndpointConfig.ServerlessConfigProperty(
                    memory_size_in_mb=endpoint.serverless_memory_mb,
                    max_concurrency=endpoint.serverless_max_concurrency,
                ),
            )
            data_capture = None
            kms_key_id = None  # serverless endpoints take no KmsKeyId (no attached storage)
        else:
            variant = sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name="primary",
                model_name=self.model.attr_model_name,
                initial_instance_count=endpoint.instance_count,
                instance_type=endpoint.instance_type,
                initial_variant_weight=1,
            )
            data_capture = sagemaker.CfnEndpointConfig.DataCaptureConfigProperty(
                enable_capture=True,
                initial_sampling_percentage=20,
                destination_s3_uri=props.lake.s3_url_for_object(DATA_CAPTURE_PREFIX.rstrip("/")),
                kms_key_id=props.key.key_arn,
                capture_options=[
                    sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Input"),
                    sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Output"),
                ],
            )
            kms_key_id = props.key.key_arn
        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "EndpointConfig",
            production_variants=[variant],
            data_capture_config=data_capture,
            kms_key_id=kms_key_id,
        )
        if kms_key_id is None:
            suppress(
                self.endpoint_config,
                "NIST.800.53.R5-SageMakerEndpointConfigurationKMSKeyConfigured",
                "Serverless endpoint: SageMaker refuses KmsKeyId on serverless endpoint configs (no attached "
                "storage volume); the realtime mode (prod default) encrypts with the stage key.",
            )
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
            endpoint_name=f"{config.prefix}-scoring",
        )
        # SageMaker would create the endpoint's log group itself, with no retention and outside the stack.
        self.endpoint_logs = log_group(
            self,
            "EndpointLogs",
            config=config,
            key=props.key,
            name=f"/aws/sagemaker/Endpoints/{config.prefix}-scoring",
        )
        self.endpoint.node.add_dependency(self.endpoint_logs)
        # The endpoint, its config and the model are compute, not data: always deleted with the stack.
        self.endpoint_name = f"{config.prefix}-scoring"
        self.endpoint_arn = (
            f"arn:{self.partition}:sagemaker:{self.region}:{self.account}:endpoint/{self.endpoint_name}"
        )

        # CloudFormation requires a name here; a fixed one would make the next deploy after a prod destroy
        # (which retains the group) fail with AlreadyExists. The first block of the stack's id is new with
        # every stack creation, so a re-deploy gets a new group and the retained one keeps its history.
        self.model_package_group = sagemaker.CfnModelPackageGroup(
            self,
            "ModelPackageGroup",
            model_package_group_name=Fn.join(
                "-",
                [
                    f"{config.prefix}-return-abuse",
                    Fn.select(0, Fn.split("-", Fn.select(2, Fn.split("/", self.stack_id)))),
                ],
            ),
            model_package_group_description="Return-abuse XGBoost models that passed the evaluation gate",
        )
        self.model_package_group.apply_removal_policy(removal_policy(config))
        # read back from the group's ARN, so other stacks import it (AWS::StackId would be their own there)
        self.model_package_group_name = Fn.select(
            1, Fn.split("/", self.model_package_group.attr_model_package_group_arn)
        )
        CfnOutput(self, "ModelPackageGroupName", value=self.model_package_group_name)
        if not config.retain_data:
            # dev: destroy deletes what retraining registered and created; prod keeps it (docs/deploy.md)
            self.cleanup = RetrainingCleanup(
                self,
                "RetrainingCleanup",
                config=config,
                key=props.key,
                model_package_group=self.model_package_group,
                model_package_group_name=self.model_package_group_name,
                endpoint=self.endpoint,
                endpoint_name=self.endpoint_name,
            )

    def _sagemaker_role(self, id: str, config: StageConfig, what: str, log_kind: str) -> iam.Role:
        """A SageMaker execution role that can pull the XGBoost image and write its own kind of logs
        (its endpoints' /aws/sagemaker/Endpoints/<prefix>-* groups, or the region's one
        /aws/sagemaker/TrainingJobs group) and SageMaker metrics."""
        role = iam.Role(
            self,
            id,
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"{config.prefix} SageMaker {what}",
        )
        repository = Fn.join(
            "",
            [
                f"arn:{self.partition}:ecr:{self.region}:",
                Fn.select(0, Fn.split(".", self.image_uri)),
                ":repository/sagemaker-xgboost",
            ],
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], resources=[repository]
            )
        )
        role.add_to_policy(iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]))
        logs = f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:/aws/sagemaker/{log_kind}"
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                ],
                resources=[f"{logs}/{config.prefix}-*" if log_kind == "Endpoints" else f"{logs}*"],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*", "aws/sagemaker/*"]}},
            )
        )
        suppress(
            role,
            "AwsSolutions-IAM5",
            f"SageMaker {what}: S3 object wildcards are the lake prefixes this role reads or writes "
            "(CDK's read/put grants: GetObject*, GetBucket*, List*, PutObject*, Abort*); "
            + (
                f"the log groups of this stage's endpoints (/aws/sagemaker/Endpoints/{config.prefix}-*)"
                if log_kind == "Endpoints"
                else "the region's one /aws/sagemaker/TrainingJobs group (its streams are named per job)"
            )
            + "; KMS data-key actions on the stage key; "
            "ecr:GetAuthorizationToken and cloudwatch:PutMetricData (namespace-conditioned) have no "
            "resource-level permissions.",
            applies_to=_iam5_patterns(),
        )
        return role


def _iam5_patterns() -> list:
    from cdk_nag import RegexAppliesTo

    return [
        "Resource::*",
        *S3_KMS_GRANT_ACTIONS,
        RegexAppliesTo(
            regex="/^Resource::<LakeBucket[A-F0-9]+\\.Arn>\\/(processed\\/(return-)?training-data|models\\/(artifacts|data-capture))\\/\\*$/"
        ),
        RegexAppliesTo(
            regex="/^Resource::arn:<AWS::Partition>:logs:.*:log-group:\\/aws\\/sagemaker\\/"
            "(Endpoints\\/[a-z0-9-]+-\\*|TrainingJobs\\*)$/"
        ),
    ]
