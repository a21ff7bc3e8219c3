"""The dev `Ml` stack's cleanup custom resource: on Delete it removes what retraining created outside
CloudFormation (lambdas/retraining_cleanup), so `cdk destroy` succeeds and nothing is left billing."""

from __future__ import annotations

from aws_cdk import CustomResource, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import custom_resources as cr
from constructs import Construct

from returnguard.aws.retraining_cleanup import TRAINING_LOG_GROUP
from stacks.config import StageConfig
from stacks.constructs import PythonFunction, log_group, suppress
from stacks.packaging import lambda_staging_folder


class RetrainingCleanup(Construct):
    """Its Delete runs after the endpoint is deleted and before the model package group is: the endpoint
    depends on it, and it depends on the group (CloudFormation deletes in reverse dependency order)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: StageConfig,
        key: kms.IKey,
        model_package_group: Construct,
        model_package_group_name: str,
        endpoint: Construct,
        endpoint_name: str,
    ) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        sm = f"arn:{stack.partition}:sagemaker:{stack.region}:{stack.account}"
        handler = PythonFunction(
            self,
            "Handler",
            config=config,
            key=key,
            code_folder=lambda_staging_folder("retraining_cleanup"),
            memory_size=256,
            timeout=Duration.minutes(5),
            description="On dev destroy: deletes the model packages, models, endpoint configs and endpoints "
            "retraining created",
            environment={"POWERTOOLS_SERVICE_NAME": "returnguard", "POWERTOOLS_LOG_LEVEL": "INFO"},
        )
        handler.role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:ListModelPackages",
                    "sagemaker:ListModels",
                    "sagemaker:ListEndpointConfigs",
                    "sagemaker:ListEndpoints",
                    "sagemaker:ListTrainingJobs",
                ],
                resources=["*"],  # List actions have no resource-level permissions
            )
        )
        handler.role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DeleteModelPackage"],
                resources=[f"{sm}:model-package/{model_package_group_name}/*"],
            )
        )
        handler.role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:DeleteModel",
                    "sagemaker:DeleteEndpointConfig",
                    "sagemaker:DeleteEndpoint",
                    "sagemaker:StopTrainingJob",
                ],
                resources=[
                    f"{sm}:{kind}/{config.prefix}-*"
                    for kind in ("model", "endpoint-config", "endpoint", "training-job")
                ],
            )
        )
        handler.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:DescribeLogStreams", "logs:DeleteLogStream"],
                resources=[
                    f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:{TRAINING_LOG_GROUP}:*"
                ],
            )
        )
        suppress(
            handler.role,
            "AwsSolutions-IAM5",
            "SageMaker List* actions have no resource-level permissions; deletes are limited to this stage's "
            "model package group and to models, endpoint configs, endpoints and training jobs named "
            "<prefix>-*, which is how retraining names them; log streams of the region's training log group.",
            applies_to=[
                "Resource::*",
                {"regex": "/^Resource::arn:<AWS::Partition>:sagemaker:.*:model-package\\/.*\\/\\*$/"},
                {
                    "regex": "/^Resource::arn:<AWS::Partition>:sagemaker:.*:"
                    "(model|endpoint-config|endpoint|training-job)\\/[a-z0-9-]+-\\*$/"
                },
                {
                    "regex": "/^Resource::arn:<AWS::Partition>:logs:.*:log-group:\\/aws\\/sagemaker\\/TrainingJobs:\\*$/"
                },
            ],
        )
        # The relay function (aws-cdk-lib's provider framework) writes only into its own log group: its
        # own role, instead of the default one with AWSLambdaBasicExecutionRole (logs on every group).
        provider_logs = log_group(self, "ProviderLogs", config=config, key=key)
        provider_role = iam.Role(
            self,
            "ProviderRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{config.prefix} retraining cleanup: the provider framework's relay function",
        )
        provider_logs.grant_write(provider_role)
        provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=handler.function,
            provider_function_env_encryption=key,  # like every function of ours (checkov CKV_AWS_173)
            log_group=provider_logs,
            role=provider_role,
        )
        suppress(
            provider_role,
            "AwsSolutions-IAM5",
            "The relay function may invoke every version of the one cleanup handler (<handler>.Arn:*), nothing "
            "else.",
            applies_to=[{"regex": "/^Resource::<RetrainingCleanupHandler[A-Za-z0-9]+\\.Arn>:\\*$/"}],
        )
        not_async = (
            "The handler is invoked synchronously by the provider framework's relay; the relay, invoked by "
            "CloudFormation, answers CloudFormation itself on success and failure (a failed Delete shows as "
            "DELETE_FAILED, a lost invocation as a stack operation that times out): nothing to park in a DLQ."
        )
        for rule, reason in (
            ("Serverless-LambdaDLQ", not_async),
            ("NIST.800.53.R5-LambdaDLQ", not_async),
            (
                "NIST.800.53.R5-LambdaConcurrency",
                "Runs once per stack create, update or delete; reserving concurrency would take it from the "
                "account's unreserved pool, which must stay >= 10 (new accounts have a quota of 10).",
            ),
            (
                "NIST.800.53.R5-LambdaInsideVPC",
                "Calls only the SageMaker and CloudWatch Logs APIs over TLS with IAM authentication and "
                "reaches no private resource; a VPC would add NAT or interface endpoints and protect nothing.",
            ),
            (
                "Serverless-LambdaDefaultMemorySize",
                "aws-cdk-lib's relay function has no memory setting; it forwards one small JSON request per "
                "stack operation, which its default 128 MB serves.",
            ),
            (
                "Serverless-LambdaTracing",
                "aws-cdk-lib's relay function only forwards the request; the cleanup handler it calls is traced "
                "(X-Ray Active, like every function of ours).",
            ),
        ):
            # on each function's own resource, so the rules' checkov twins are skipped with the same reason
            for function in (handler.function, provider.node.find_child("framework-onEvent")):
                suppress(function, rule, reason)
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=provider.service_token,
            resource_type="Custom::RetrainingCleanup",
            properties={
                "Prefix": config.prefix,
                "ModelPackageGroupName": model_package_group_name,
                "KeepEndpoints": [endpoint_name],
            },
        )
        self.resource.node.add_dependency(model_package_group)
        endpoint.node.add_dependency(self.resource)
        self.provider = provider
        self.handler = handler
