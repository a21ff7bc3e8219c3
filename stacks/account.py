"""Account stack: API Gateway's account-wide CloudWatch role, set once per account and region for every stage."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.constructs import suppress

# One stack name for every stage: dev and prod deploy the same template, so they never fight over the
# account's setting (each RestApi's own `cloudWatchRole` would, and destroying one stage broke the other's logs).
ACCOUNT_STACK_NAME = "ReturnGuard-ApiGatewayAccount"


class ApiGatewayAccountStack(Stack):
    """`AWS::ApiGateway::Account` with its role, both retained: deleting this stack (a `destroy --all` of any
    stage) leaves the account's logging as it was, so the other stage keeps its execution logs."""

    def __init__(self, scope: Construct, id: str, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        self.role = iam.Role(
            self,
            "CloudWatchRole",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            description="API Gateway pushes execution and access logs to CloudWatch Logs (account setting)",
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(
                    "service-role/AmazonAPIGatewayPushToCloudWatchLogs"
                )
            ],
        )
        self.role.apply_removal_policy(RemovalPolicy.RETAIN)
        suppress(
            self.role,
            "AwsSolutions-IAM4",
            "API Gateway's account-level CloudWatch role uses the AWS-managed "
            "AmazonAPIGatewayPushToCloudWatchLogs policy, which is what the service documents for this setting.",
            applies_to=[
                "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
            ],
        )
        self.setting = apigw.CfnAccount(self, "Account", cloud_watch_role_arn=self.role.role_arn)
        self.setting.apply_removal_policy(RemovalPolicy.RETAIN)
