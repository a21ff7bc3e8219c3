"""Console stack: the review console (docs/console.md) as one Lambda function behind a REST API of its own,
for analysts signed in with a Cognito user pool (groups `analyst` and `lead`).

The browser signs in on the pool's hosted UI (authorization code with PKCE, a public app client whose
only callback is the console's /callback); the console function keeps the ID token in an HttpOnly
cookie. A REQUEST authorizer function verifies that token (RS256 against the pool's key set, issuer,
audience, token_use, expiry) on every page but the sign-in's own, the assets and /health, and hands the
user, the token's subject and the groups to the console function (lambdas/console/handler.py), which
serves the same pages and verdicts as the local console (returnguard/aws/console_app.py). Its role may
read decisions (by key and through the by_customer and the sparse by_review indexes, never a Scan),
audit items and flagged batch rows, set only the review attributes, add audit items, and put labels
under the lake's raw/labels/ only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aws_cdk import Aws, CfnOutput, Duration, Fn, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3vectors as s3vectors
from aws_cdk import aws_sns as sns
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from returnguard.aws.reason_clusters import LATEST_REPORT, REPORT_PREFIX, RETURNS_PREFIX
from returnguard.aws.reviews import REVIEW_ATTRIBUTES, REVIEW_INDEX
from returnguard.aws.similar_cases import DIMENSIONS, TITAN_MODEL_ID
from stacks.api import ApiStack
from stacks.config import StageConfig
from stacks.constructs import (
    PythonFunction,
    checkov_skip,
    dead_letter_queue,
    log_group,
    logical_id,
    removal_policy,
    suppress,
    suppress_daily_job,
)
from stacks.layers import sdk_for_pandas_layer_arn
from stacks.packaging import lambda_staging_folder

GROUPS = ("analyst", "lead")
# What needs no sign-in, and why it may be public (the console function serves nothing else there).
PUBLIC_PATHS = {
    "login": "The sign-in's start: it only redirects to the user pool's hosted UI with a fresh PKCE "
    "challenge; it reads no data.",
    "callback": "Where the hosted UI sends the browser back: it redeems the one-time code with this "
    "browser's PKCE verifier and sets the session cookie; without a valid code it answers 401.",
    "health": 'The liveness answer {"status":"ok"}: no data.',
    "static/{asset}": "The console's stylesheet, script and icon from returnguard/console_static/: no data.",
}
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "user": "$context.authorizer.user",
    "sub": "$context.authorizer.principalId",
}
LABELS_PREFIX = "raw/labels/"
# The key attributes of the decisions table and the flagged table: an UpdateItem names them too.
KEY_ATTRIBUTES = ("decision_id", "file_digest", "row")


@dataclass(frozen=True)
class ConsoleProps:
    config: StageConfig
    key: kms.IKey
    lake: s3.IBucket
    decisions_table: dynamodb.ITable
    audit_table: dynamodb.ITable
    flagged_table: dynamodb.ITable
    web_acl: wafv2.CfnWebACL | None = None


class ConsoleStack(Stack):
    # Bedrock as the score function calls it: the inference profile of the stack's geography and the
    # foundation model in each Region it routes to (or the foundation model here without a profile).
    bedrock_model = ApiStack.bedrock_model
    _inference_profile_arn = ApiStack._inference_profile_arn

    def __init__(self, scope: Construct, id: str, *, props: ConsoleProps, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        config = props.config
        self.user_pool = cognito.UserPool(
            self,
            "Users",
            user_pool_name=f"{config.prefix}-console",
            self_sign_up_enabled=False,  # a lead or an administrator creates each analyst (docs/deploy.md)
            sign_in_aliases=cognito.SignInAliases(username=True, email=True),
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            password_policy=cognito.PasswordPolicy(
                min_length=14,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                temp_password_validity=Duration.days(3),
            ),
            mfa=cognito.Mfa.REQUIRED,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            feature_plan=cognito.FeaturePlan.PLUS,
            standard_threat_protection_mode=cognito.StandardThreatProtectionMode.FULL_FUNCTION,
            removal_policy=removal_policy(config),
        )
        self.groups = {
            name: cognito.CfnUserPoolGroup(
                self,
                f"Group{name.title()}",
                user_pool_id=self.user_pool.user_pool_id,
                group_name=name,
                precedence=len(GROUPS) - i,  # lead (0 is highest) before analyst
                description=f"Review console: {name}",
            )
            for i, name in enumerate(GROUPS, start=1)
        }
        # The hosted UI (classic) under a Cognito domain; the prefix is global to the Region, hence the account.
        self.domain = self.user_pool.add_domain(
            "HostedUi",
            cognito_domain=cognito.CognitoDomainOptions(
                domain_prefix=f"{config.prefix}-console-{Aws.ACCOUNT_ID}"
            ),
        )

        # The leads' summary (the /summary page and the daily e-mail) is rewritten by the stage's Bedrock
        # model when it has one; the template otherwise.
        model_id, model_arns = self.bedrock_model(config.bedrock) if config.bedrock.enabled else ("", [])
        console = PythonFunction(
            self,
            "Console",
            config=config,
            key=props.key,
            code_folder=lambda_staging_folder("console"),
            memory_size=1024,  # pyarrow's import for a label, and the review index's cases per queue page
            timeout=Duration.seconds(29),  # API Gateway's integration limit
            description="The review console: queue, case view, verdicts (docs/console.md)",
            environment={
                "RG_DECISIONS_TABLE": props.decisions_table.table_name,
                "RG_AUDIT_TABLE": props.audit_table.table_name,
                "RG_FLAGGED_TABLE": props.flagged_table.table_name,
                "RG_LAKE_BUCKET": props.lake.bucket_name,
                "RG_STAGE": config.stage,
                "RG_BEDROCK_MODEL_ID": model_id,
                "POWERTOOLS_SERVICE_NAME": "returnguard-console",
                "POWERTOOLS_LOG_LEVEL": config.log_level,
            },
        )
        self.pandas_layer = lambda_.LayerVersion.from_layer_version_arn(
            self, "SdkForPandas", sdk_for_pandas_layer_arn(self)
        )
        console.function.add_layers(self.pandas_layer)
        self.function = console.function
        self.role = console.role
        self._grants(props)
        self._similar_cases(config)
        if model_arns:
            self.role.add_to_policy(
                iam.PolicyStatement(actions=["bedrock:InvokeModel"], resources=model_arns)  # Converse
            )
        self._daily_summary(config, props, model_id, model_arns)
        self._reason_clusters(config, props)

        not_async = (
            "Invoked synchronously by API Gateway only: the analyst's browser gets the error; a DLQ applies "
            "to asynchronous invocations, which this function never gets."
        )
        suppress(console.function, "Serverless-LambdaDLQ", not_async)
        suppress(console.function, "NIST.800.53.R5-LambdaDLQ", not_async)
        suppress(
            console.function,
            "NIST.800.53.R5-LambdaConcurrency",
            "The console API's stage throttle bounds the request rate (a handful of analysts); reserving "
            "concurrency takes it from the account's unreserved pool, which must stay >= 10.",
        )
        suppress(
            console.function,
            "NIST.800.53.R5-LambdaInsideVPC",
            "Calls only AWS APIs (DynamoDB, S3) over TLS with IAM authentication and reaches no private "
            "resource; a VPC would add NAT or interface endpoints and protect nothing more.",
        )

        # The console's address, built from the API's id (the stage's own URL attribute would make the
        # client, and so the functions, depend on the deployment, which depends on them).
        self.api = self._rest_api(config, props)
        console_url = (
            f"https://{self.api.rest_api_id}.execute-api.{self.region}.{self.url_suffix}/{config.stage}"
        )
        self.client = self.user_pool.add_client(
            "ConsoleClient",
            user_pool_client_name=f"{config.prefix}-console",
            generate_secret=False,  # a public client: PKCE instead of a secret
            auth_flows=cognito.AuthFlow(user_srp=True),
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True),
                scopes=[cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL, cognito.OAuthScope.PROFILE],
                callback_urls=[f"{console_url}/callback"],
                logout_urls=[f"{console_url}/login"],
            ),
            supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
            prevent_user_existence_errors=True,
            id_token_validity=Duration.hours(1),
            access_token_validity=Duration.hours(1),
            refresh_token_validity=Duration.hours(8),
        )
        issuer = f"https://cognito-idp.{self.region}.{self.url_suffix}/{self.user_pool.user_pool_id}"
        sign_in = {"RG_COGNITO_ISSUER": issuer, "RG_CONSOLE_CLIENT_ID": self.client.user_pool_client_id}
        for name, value in {
            **sign_in,
            "RG_COGNITO_DOMAIN_URL": self.domain.base_url(),
            "RG_CONSOLE_URL": console_url,
        }.items():
            console.function.add_environment(name, value)
        authorizer = self._authorizer(config, props, sign_in)
        self._routes(config, console.function, authorizer)
        CfnOutput(self, "ConsoleUrl", value=f"{console_url}/", description="The review console")
        CfnOutput(self, "ConsoleSignInDomain", value=self.domain.base_url())
        CfnOutput(self, "ConsoleUserPoolId", value=self.user_pool.user_pool_id)
        CfnOutput(self, "ConsoleClientId", value=self.client.user_pool_client_id)

    def _grants(self, props: ConsoleProps) -> None:
        decisions, audit, flagged = props.decisions_table, props.audit_table, props.flagged_table
        role = self.role
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem"], resources=[decisions.table_arn, flagged.table_arn]
            )
        )
        # No Scan of the decisions: the queue reads the sparse by_review index (cases that need a person);
        # the flagged table holds flagged rows only.
        role.add_to_policy(iam.PolicyStatement(actions=["dynamodb:Scan"], resources=[flagged.table_arn]))
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["dynamodb:Query"],
                resources=[
                    f"{decisions.table_arn}/index/by_customer",
                    f"{decisions.table_arn}/index/{REVIEW_INDEX}",
                    audit.table_arn,
                ],
            )
        )
        # A verdict sets (or, when its audit item or label fails, puts back) the review attributes only.
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["dynamodb:UpdateItem"],
                resources=[decisions.table_arn, flagged.table_arn],
                conditions={
                    "ForAllValues:StringEquals": {
                        "dynamodb:Attributes": [*KEY_ATTRIBUTES, *REVIEW_ATTRIBUTES]
                    }
                },
            )
        )
        role.add_to_policy(iam.PolicyStatement(actions=["dynamodb:PutItem"], resources=[audit.table_arn]))
        props.lake.grant_put(role, f"{LABELS_PREFIX}*")
        props.key.grant(role, "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey")
        suppress(
            role,
            "AwsSolutions-IAM5",
            "Labels are written under the lake's raw/labels/ prefix only (CDK's put grant: PutObject*, "
            "Abort*); the KMS data-key actions are on the one stage key that encrypts the lake and tables.",
            applies_to=[
                "Action::kms:GenerateDataKey*",
                "Action::kms:ReEncrypt*",
                "Action::s3:Abort*",
                "Action::s3:PutObject*",
                f"Resource::<{logical_id(props.lake)}.Arn>/{LABELS_PREFIX}*",  # type: ignore[arg-type]
            ],
        )

    def _similar_cases(self, config: StageConfig) -> None:
        """Decided cases as Titan V2 vectors in an S3 Vectors index (cosine), for the case view's similar
        cases (returnguard/aws/similar_cases.py). Encrypted with S3-managed keys: the stage key's policy
        would need the S3 Vectors service principal, which the Data stack does not grant. Deleted with the
        stack in every stage: the vectors are derived data, rebuilt by embedding the decided cases again
        (the verdicts themselves are on the decisions, in the audit table and in the lake's labels)."""
        bucket = s3vectors.CfnVectorBucket(
            self,
            "Vectors",
            vector_bucket_name=f"{config.prefix}-console-vectors",
            encryption_configuration=s3vectors.CfnVectorBucket.EncryptionConfigurationProperty(
                sse_type="AES256"
            ),
        )
        index = s3vectors.CfnIndex(
            self,
            "CaseIndex",
            vector_bucket_name=bucket.vector_bucket_name,
            index_name="cases",
            data_type="float32",
            dimension=DIMENSIONS,
            distance_metric="cosine",
        )
        index.add_dependency(bucket)
        self.vector_bucket = bucket
        self.case_index_name = index.index_name or "cases"
        self.function.add_environment("RG_VECTOR_BUCKET", bucket.vector_bucket_name or "")
        self.function.add_environment("RG_VECTOR_INDEX", "cases")
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3vectors:PutVectors", "s3vectors:QueryVectors", "s3vectors:GetVectors"],
                resources=[index.attr_index_arn],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["bedrock:InvokeModel"],
                resources=[f"arn:{self.partition}:bedrock:{self.region}::foundation-model/{TITAN_MODEL_ID}"],
            )
        )

    def _reason_clusters(self, config: StageConfig, props: ConsoleProps) -> None:
        """The return reason clusters (lambdas/console_clusters/handler.py): at 03:00 UTC a function reads
        the latest written reasons of 30 days from the lake's raw/returns, embeds the new ones with Titan
        V2 into the `reasons` index of the console's vector bucket (keyed by the text's hash: a reason is
        embedded once), clusters them with the local report's code and writes the report under
        reports/reason-clusters/, which the console function may read (one key) for leads."""
        index = s3vectors.CfnIndex(
            self,
            "ReasonIndex",
            vector_bucket_name=self.vector_bucket.vector_bucket_name,
            index_name="reasons",
            data_type="float32",
            dimension=DIMENSIONS,
            distance_metric="cosine",
        )
        index.add_dependency(self.vector_bucket)
        job = PythonFunction(
            self,
            "Clusters",
            config=config,
            key=props.key,
            code_folder=lambda_staging_folder("console_clusters"),
            memory_size=1024,  # pyarrow and NumPy (SDK for pandas layer), 2,000 × 512 vectors
            timeout=Duration.minutes(10),  # a first run embeds up to 2,000 reasons, 4 at a time
            description="The return reason clusters (docs/console.md)",
            environment={
                "RG_LAKE_BUCKET": props.lake.bucket_name,
                "RG_VECTOR_BUCKET": self.vector_bucket.vector_bucket_name or "",
                "RG_REASONS_INDEX": "reasons",
                "POWERTOOLS_SERVICE_NAME": "returnguard-console-clusters",
                "POWERTOOLS_LOG_LEVEL": config.log_level,
            },
        )
        job.function.add_layers(self.pandas_layer)
        self.clusters_function = job.function
        self.clusters_dead_letters = dead_letter_queue(
            self, "ClustersDeadLetters", key=props.key, of="the reason clusters' schedule"
        )
        events.Rule(
            self,
            "DailyClusters",
            schedule=events.Schedule.cron(minute="0", hour="3"),
            targets=[
                targets.LambdaFunction(
                    job.function, retry_attempts=2, dead_letter_queue=self.clusters_dead_letters
                )
            ],
            description="The return reason clusters",
        )
        job.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[props.lake.arn_for_objects(f"{RETURNS_PREFIX}*")]
            )
        )
        job.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[props.lake.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{RETURNS_PREFIX}*"]}},
            )
        )
        props.lake.grant_put(job.role, f"{REPORT_PREFIX}*")
        props.key.grant(job.role, "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey")
        job.role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "s3vectors:GetVectors",
                    "s3vectors:PutVectors",
                    "s3vectors:ListVectors",  # to forget the reasons that left the window
                    "s3vectors:DeleteVectors",
                ],
                resources=[index.attr_index_arn],
            )
        )
        job.role.add_to_policy(
            iam.PolicyStatement(
                actions=["bedrock:InvokeModel"],
                resources=[f"arn:{self.partition}:bedrock:{self.region}::foundation-model/{TITAN_MODEL_ID}"],
            )
        )
        lake = logical_id(props.lake)  # type: ignore[arg-type]
        suppress(
            job.role,
            "AwsSolutions-IAM5",
            "GetObject on the lake's raw/returns/ prefix only (the returns it clusters) and CDK's put grant "
            "on reports/reason-clusters/ only (PutObject*, Abort*); the KMS data-key actions are on the one "
            "stage key that encrypts the lake.",
            applies_to=[
                "Action::kms:GenerateDataKey*",
                "Action::kms:ReEncrypt*",
                "Action::s3:Abort*",
                "Action::s3:PutObject*",
                f"Resource::<{lake}.Arn>/{RETURNS_PREFIX}*",
                f"Resource::<{lake}.Arn>/{REPORT_PREFIX}*",
            ],
        )
        # The console function shows leads the latest report: that one object, read only.
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[props.lake.arn_for_objects(LATEST_REPORT)]
            )
        )
        suppress_daily_job(
            job.function,
            failed_run=", and the next day's run computes the clusters again from the lake",
            services="S3, S3 Vectors, Bedrock",
        )

    def _daily_summary(
        self, config: StageConfig, props: ConsoleProps, model_id: str, model_arns: list[str]
    ) -> None:
        """The leads' daily summary (lambdas/console_summary/handler.py): at 03:30 UTC (09:00 in India) a
        function reads the cases that needed a person from the sparse review index, lets Bedrock rewrite
        the template summary when the stage has a model (checked; the template otherwise) and publishes it
        to the leads' topic, which each lead subscribes to (docs/deploy.md)."""
        self.summary_topic = sns.Topic(
            self,
            "LeadSummaries",
            master_key=props.key,
            enforce_ssl=True,
            display_name="ReturnGuard daily review summary",
        )
        job = PythonFunction(
            self,
            "Summary",
            config=config,
            key=props.key,
            code_folder=lambda_staging_folder("console_summary"),
            memory_size=512,
            timeout=Duration.minutes(2),
            description="The leads' daily review summary (docs/console.md)",
            environment={
                "RG_DECISIONS_TABLE": props.decisions_table.table_name,
                "RG_AUDIT_TABLE": props.audit_table.table_name,
                "RG_FLAGGED_TABLE": props.flagged_table.table_name,
                "RG_SUMMARY_TOPIC_ARN": self.summary_topic.topic_arn,
                "RG_BEDROCK_MODEL_ID": model_id,
                "POWERTOOLS_SERVICE_NAME": "returnguard-console-summary",
                "POWERTOOLS_LOG_LEVEL": config.log_level,
            },
        )
        self.summary_function = job.function
        self.summary_dead_letters = dead_letter_queue(
            self, "SummaryDeadLetters", key=props.key, of="the daily review summary's schedule"
        )
        events.Rule(
            self,
            "DailySummary",
            schedule=events.Schedule.cron(minute="30", hour="3"),
            targets=[
                targets.LambdaFunction(
                    job.function, retry_attempts=2, dead_letter_queue=self.summary_dead_letters
                )
            ],
            description="The leads' daily review summary",
        )
        decisions = props.decisions_table
        job.role.add_to_policy(
            iam.PolicyStatement(
                actions=["dynamodb:Query"], resources=[f"{decisions.table_arn}/index/{REVIEW_INDEX}"]
            )
        )
        job.role.add_to_policy(
            iam.PolicyStatement(actions=["dynamodb:Scan"], resources=[props.flagged_table.table_arn])
        )
        self.summary_topic.grant_publish(job.role)
        props.key.grant(job.role, "kms:Decrypt", "kms:DescribeKey")  # the tables are under the stage key
        suppress(
            job.role,
            "AwsSolutions-IAM5",
            "CDK's publish grant on a topic encrypted with the stage key: kms:GenerateDataKey* on that one key, "
            "which SNS needs to encrypt the message on the publisher's behalf.",
            applies_to=["Action::kms:GenerateDataKey*"],
        )
        if model_arns:
            job.role.add_to_policy(
                iam.PolicyStatement(actions=["bedrock:InvokeModel"], resources=model_arns)  # Converse
            )
        suppress_daily_job(
            job.function,
            failed_run=", and the next day's summary covers its own 24 hours",
            services="DynamoDB, Bedrock, SNS",
        )
        CfnOutput(self, "LeadSummaryTopicArn", value=self.summary_topic.topic_arn)

    def _rest_api(self, config: StageConfig, props: ConsoleProps) -> apigw.RestApi:
        access_logs = log_group(self, "AccessLogs", config=config, key=props.key)
        api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=f"{config.prefix}-console",
            description="ReturnGuard review console",
            cloud_watch_role=False,  # the ApiGatewayAccount stack's role, as for the risk-score API
            deploy_options=apigw.StageOptions(
                stage_name=config.stage,
                tracing_enabled=True,
                logging_level=apigw.MethodLoggingLevel[config.api_execution_log_level],
                data_trace_enabled=False,  # bodies carry notes and customer data
                metrics_enabled=True,
                throttling_rate_limit=20,
                throttling_burst_limit=40,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                # who did what: the user name and the token's subject the authorizer verified
                access_log_format=apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS)),
            ),
            endpoint_types=[apigw.EndpointType.REGIONAL],
        )
        execution_logs = log_group(
            self,
            "ExecutionLogs",
            config=config,
            key=props.key,
            name=Fn.join("", ["API-Gateway-Execution-Logs_", api.rest_api_id, f"/{config.stage}"]),
        )
        api.deployment_stage.node.add_dependency(execution_logs)
        # A request the authorizer refuses (no session, an expired or forged token) goes to the sign-in.
        api.add_gateway_response(
            "SignIn",
            type=apigw.ResponseType.UNAUTHORIZED,
            status_code="302",
            response_headers={"Location": f"'/{config.stage}/login'", "Cache-Control": "'no-store'"},
        )

        no_cache = (
            "No stage cache: every page shows one person's queue or case as it is now, and a verdict "
            "changes it; a cache would serve stale or another analyst's pages."
        )
        suppress(api, "NIST.800.53.R5-APIGWCacheEnabledAndEncrypted", no_cache)
        checkov_skip(api.deployment_stage, "CKV_AWS_120", no_cache)
        suppress(
            api,
            "NIST.800.53.R5-APIGWSSLEnabled",
            "Client certificates authenticate API Gateway to an HTTP backend; the only integration here is "
            "a Lambda proxy, invoked through IAM.",
        )
        if props.web_acl is not None:
            wafv2.CfnWebACLAssociation(
                self,
                "WebAclAssociation",
                resource_arn=api.deployment_stage.stage_arn,
                web_acl_arn=props.web_acl.attr_arn,
            )
        else:
            for rule in ("AwsSolutions-APIG3", "NIST.800.53.R5-APIGWAssociatedWithWAF"):
                suppress(api, rule, "WAF is off in this stage (context 'waf'; on by default in prod).")
        return api

    def _authorizer(
        self, config: StageConfig, props: ConsoleProps, environment: dict[str, str]
    ) -> apigw.RequestAuthorizer:
        """The REQUEST authorizer (lambdas/console_authorizer/handler.py): it verifies the Cognito ID token
        of the session cookie or the bearer header. No result cache and so no identity source: a
        request with neither reaches it too and is refused there, and a token stops working at its
        expiry, not up to a cache's lifetime later."""
        checker = PythonFunction(
            self,
            "Authorizer",
            config=config,
            key=props.key,
            code_folder=lambda_staging_folder("console_authorizer"),
            memory_size=256,
            timeout=Duration.seconds(10),
            description="The review console's authorizer: verifies the analyst's Cognito ID token",
            environment={
                **environment,
                "POWERTOOLS_SERVICE_NAME": "returnguard-console-authorizer",
                "POWERTOOLS_LOG_LEVEL": config.log_level,
            },
        )
        self.authorizer_function = checker.function
        suppress(
            checker.function,
            "Serverless-LambdaDLQ",
            "Invoked synchronously by API Gateway as the console's authorizer: a failure is a refused "
            "request (401), there is no event to keep.",
        )
        suppress(
            checker.function,
            "NIST.800.53.R5-LambdaDLQ",
            "Invoked synchronously by API Gateway as the console's authorizer: a failure is a refused "
            "request (401), there is no event to keep.",
        )
        suppress(
            checker.function,
            "NIST.800.53.R5-LambdaConcurrency",
            "Called once per console request, which the console API's stage throttle bounds (20/s); "
            "reserving concurrency takes it from the account's unreserved pool, which must stay >= 10.",
        )
        suppress(
            checker.function,
            "NIST.800.53.R5-LambdaInsideVPC",
            "Reaches only the user pool's public key set (HTTPS) and no private resource; a VPC would "
            "need a NAT gateway to reach it and protect nothing more.",
        )
        return apigw.RequestAuthorizer(
            self,
            "SessionAuthorizer",
            handler=checker.function,
            identity_sources=[],
            results_cache_ttl=Duration.seconds(0),
        )

    def _routes(
        self, config: StageConfig, function: lambda_.IFunction, authorizer: apigw.RequestAuthorizer
    ) -> None:
        """Every page behind the authorizer, except the sign-in's own two pages, the assets and /health."""
        api = self.api
        validator = api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )
        integration = apigw.LambdaIntegration(function)
        signed_in = {
            "authorizer": authorizer,
            "authorization_type": apigw.AuthorizationType.CUSTOM,
            "request_validator": validator,
        }
        methods = [
            api.root.add_method("ANY", integration, **signed_in),
            api.root.add_proxy(any_method=False).add_method("ANY", integration, **signed_in),
        ]
        public = {"authorization_type": apigw.AuthorizationType.NONE, "request_validator": validator}
        for path in PUBLIC_PATHS:
            resource = api.root.resource_for_path(path)
            method = resource.add_method("GET", integration, **public)
            why = PUBLIC_PATHS[path]
            suppress(method, "AwsSolutions-APIG4", why)
            suppress(method, "AwsSolutions-COG4", why)
            checkov_skip(method, "CKV_AWS_59", why)
        cognito_cannot = (
            "A browser's page request cannot carry the ID token in a header, and a Cognito user pool "
            "authorizer reads only a header that holds the token alone. The REQUEST authorizer verifies "
            "the same user pool's ID token (RS256 against the pool's key set, issuer, this app client as "
            "audience, token_use id, expiry) from the HttpOnly session cookie or the Authorization header."
        )
        for method in methods:
            suppress(method, "AwsSolutions-COG4", cognito_cannot)
