"""API stack: REST API with API key, usage plan, throttling, request validation and access logs, in front
of the `score` function."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aws_cdk import ArnFormat, Aws, CfnCondition, CfnMapping, CfnOutput, Duration, Fn, Stack, Token
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from returnguard.aws.serving_profile import PROFILES_PREFIX
from returnguard.order_record import order_record_key
from returnguard.payments import card_velocity_key, customer_velocity_key
from returnguard.tables import recent_orders_key
from stacks.config import BedrockConfig, StageConfig
from stacks.constructs import PythonFunction, checkov_skip, log_group, removal_policy, suppress
from stacks.packaging import lambda_staging_folder
from stacks.request_schema import RISK_SCORE_REQUEST

# The `features` item prefixes the score function writes (UpdateItem): returnguard/aws/recent_orders.py's
# velocity# (orders) and payment_velocity#/card_velocity# (payments), returnguard/aws/order_records.py's order#.
SCORE_FUNCTION_RECORDS = (
    recent_orders_key(""),
    order_record_key(""),
    customer_velocity_key(""),
    card_velocity_key(""),
)


@dataclass(frozen=True)
class ApiProps:
    config: StageConfig
    key: kms.IKey
    tables: dict[str, dynamodb.ITable]
    endpoint_name: str
    endpoint_arn: str
    lake: s3.IBucket  # the serving profiles a promotion publishes (models/serving/)


class ApiStack(Stack):
    def __init__(self, scope: Construct, id: str, *, props: ApiProps, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        config = props.config
        bedrock = config.bedrock
        bedrock_model_id, bedrock_resources = (
            self.bedrock_model(config.bedrock) if bedrock.enabled else ("", [])
        )
        score = PythonFunction(
            self,
            "Score",
            config=config,
            key=props.key,
            # the fallback model rides inside the function: it must work when the endpoint does not
            code_folder=lambda_staging_folder("score", files=config.model.fallback_files),
            memory_size=512,
            timeout=Duration.seconds(10),
            snap_start=config.score_snapstart,
            description="POST /v1/risk-score, GET /v1/decisions/{decision_id}, GET /v1/health",
            environment={
                "RG_FEATURES_TABLE": props.tables["features"].table_name,
                "RG_DECISIONS_TABLE": props.tables["decisions"].table_name,
                "RG_EXPLANATIONS_TABLE": props.tables["explanations"].table_name,
                "RG_AUDIT_TABLE": props.tables["audit"].table_name,
                "RG_ENDPOINT_NAME": props.endpoint_name,
                "RG_MODEL_CONFIG": config.model.serving_config_json,
                "RG_LAKE_BUCKET": props.lake.bucket_name,
                "RG_POLICY": config.policy_json,
                "RG_RETURN_POLICY": config.return_policy_json,
                **config.order_time_environment,
                **config.variant_environment,
                "RG_BEDROCK_MODEL_ID": bedrock_model_id,
                "RG_BEDROCK_GUARDRAIL_ID": bedrock.guardrail_id,
                "RG_BEDROCK_GUARDRAIL_VERSION": bedrock.guardrail_version,
                "RG_STAGE": config.stage,
                "POWERTOOLS_SERVICE_NAME": "returnguard",
                "POWERTOOLS_METRICS_NAMESPACE": "ReturnGuard",
                "POWERTOOLS_LOG_LEVEL": config.log_level,
            },
        )
        self.function = score.function
        # API Gateway calls a published version through the `live` alias (SnapStart snapshots published
        # versions only); each deploy that changes the function publishes a version and moves the alias.
        self.live = lambda_.Alias(
            self, "ScoreLive", alias_name="live", version=score.function.current_version
        )
        # Exactly the calls the function makes (returnguard/aws/feature_store.py, decisions.py, narrative.py,
        # recent_orders.py): no Scan, Query or BatchWrite, no index, not the stream's idempotency table, and
        # UpdateItem only on the items it records what it scored in (velocity#, order# for the return lane,
        # payment_velocity# and card_velocity# for payments), never an aggregate.
        for table, actions in (
            ("features", ["dynamodb:BatchGetItem", "dynamodb:GetItem"]),
            (
                "decisions",
                ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"],
            ),  # delete: rollback
            ("audit", ["dynamodb:PutItem"]),
            ("explanations", ["dynamodb:GetItem", "dynamodb:PutItem"]),
        ):
            score.role.add_to_policy(
                iam.PolicyStatement(actions=actions, resources=[props.tables[table].table_arn])
            )
        score.role.add_to_policy(
            iam.PolicyStatement(
                actions=["dynamodb:UpdateItem"],
                resources=[props.tables["features"].table_arn],
                conditions={
                    "ForAllValues:StringLike": {
                        "dynamodb:LeadingKeys": [f"{prefix}*" for prefix in SCORE_FUNCTION_RECORDS]
                    }
                },
            )
        )
        # A promoted model's thresholds and fallback (returnguard.aws.serving_profile): read once per
        # execution environment and model version, never written.
        score.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[props.lake.arn_for_objects(f"{PROFILES_PREFIX}*")]
            )
        )
        # The tables are encrypted with the stage key; DynamoDB uses it on the caller's behalf.
        props.key.grant(score.role, "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey")
        score.role.add_to_policy(
            iam.PolicyStatement(actions=["sagemaker:InvokeEndpoint"], resources=[props.endpoint_arn])
        )
        if bedrock.enabled:
            score.role.add_to_policy(
                iam.PolicyStatement(
                    actions=["bedrock:InvokeModel"],  # Converse is authorized by InvokeModel
                    resources=bedrock_resources,
                )
            )
            if bedrock.guardrail_id:
                score.role.add_to_policy(
                    iam.PolicyStatement(
                        actions=["bedrock:ApplyGuardrail"],
                        resources=[
                            f"arn:{self.partition}:bedrock:{self.region}:{self.account}:guardrail/{bedrock.guardrail_id}"
                        ],
                    )
                )
        suppress(
            score.function,
            "Serverless-LambdaDLQ",
            "Invoked synchronously by API Gateway only: the caller gets the error; a DLQ applies to "
            "asynchronous invocations, which this function never gets.",
        )
        suppress(
            score.function,
            "NIST.800.53.R5-LambdaDLQ",
            "Invoked synchronously by API Gateway only: the caller gets the error; a DLQ applies to "
            "asynchronous invocations, which this function never gets.",
        )
        suppress(
            score.function,
            "NIST.800.53.R5-LambdaConcurrency",
            "The API stage and usage-plan throttles bound the request rate; reserving concurrency takes it "
            "from the account's unreserved pool, which must stay >= 10 (new accounts have a quota of 10).",
        )
        suppress(
            score.role,
            "AwsSolutions-IAM5",
            f"Reads the serving profile of whichever model version the endpoint answers with, one object "
            f"per version under the lake's {PROFILES_PREFIX} (written by the promote step).",
            applies_to=[{"regex": "/^Resource::<.*>\\/models\\/serving\\/\\*$/"}],
        )
        suppress(
            score.function,
            "NIST.800.53.R5-LambdaInsideVPC",
            "Calls only AWS APIs (DynamoDB, SageMaker runtime, Bedrock, S3) over TLS with IAM authentication and "
            "reaches no private resource; a VPC would add NAT or interface endpoints and protect nothing more.",
        )

        access_logs = log_group(self, "AccessLogs", config=config, key=props.key)
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=f"{config.prefix}-api",
            description="ReturnGuard risk-score API",
            # the account's CloudWatch role is the ApiGatewayAccount stack's (one per account, not per stage)
            cloud_watch_role=False,
            deploy_options=apigw.StageOptions(
                stage_name=config.stage,
                tracing_enabled=True,
                # INFO writes each request's execution trace (request data included); prod keeps ERROR
                logging_level=apigw.MethodLoggingLevel[config.api_execution_log_level],
                data_trace_enabled=False,
                metrics_enabled=True,
                throttling_rate_limit=config.api_throttle.rate_limit,
                throttling_burst_limit=config.api_throttle.burst_limit,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=False,
                ),
            ),
            endpoint_types=[apigw.EndpointType.REGIONAL],
        )
        # API Gateway would create this one itself on the first logged request, with no retention and outside
        # the stack; made here (before the stage) it has the stage's retention and goes with the stack.
        execution_logs = log_group(
            self,
            "ExecutionLogs",
            config=config,
            key=props.key,
            name=Fn.join("", ["API-Gateway-Execution-Logs_", self.api.rest_api_id, f"/{config.stage}"]),
        )
        self.api.deployment_stage.node.add_dependency(execution_logs)
        _gateway_errors(self.api)
        request_model = self.api.add_model(
            "RiskScoreRequest",
            content_type="application/json",
            model_name="RiskScoreRequest",
            schema=_json_schema(RISK_SCORE_REQUEST),
        )
        validator = self.api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )
        integration = apigw.LambdaIntegration(self.live)
        v1 = self.api.root.add_resource("v1")
        risk_score = v1.add_resource("risk-score")
        risk_score.add_method(
            "POST",
            integration,
            api_key_required=True,
            request_validator=validator,
            request_models={"application/json": request_model},
        )
        decision = v1.add_resource("decisions").add_resource("{decision_id}")
        decision.add_method(
            "GET",
            integration,
            api_key_required=True,
            request_validator=validator,
            request_parameters={"method.request.path.decision_id": True},
        )
        health_resource = v1.add_resource("health")
        health = health_resource.add_method("GET", integration, request_validator=validator)
        # Another method on a known path (PUT, DELETE, TRACE, ...) goes to the function, which answers
        # 405 method_not_allowed with Allow, as the local API does; without these API Gateway answers
        # 404 (its missing-token response). Key required: anonymous callers get 403 before any invoke.
        for resource in (risk_score, decision, health_resource):
            resource.add_method("ANY", integration, api_key_required=True)
        checkov_skip(
            health,
            "CKV_AWS_59",
            "GET /v1/health is open on purpose (load-balancer style checks); it reads no data and returns only "
            "the service's status. Every other method requires an API key.",
        )
        suppress(
            self.api,
            "AwsSolutions-APIG4",
            "Callers are merchant back-ends authenticated by API key + usage plan (seed 004); IAM or Cognito "
            "authorizers would need an identity provider this open-source deploy does not assume. "
            "GET /v1/health is deliberately open for load-balancer style checks.",
        )
        suppress(self.api, "AwsSolutions-COG4", "See AwsSolutions-APIG4: API keys, no Cognito user pool.")
        no_cache = (
            "No stage cache: every POST is a new decision and GETs read one caller's stored decision; a cache "
            "would serve stale or another caller's answers (and bills per hour from 0.5 GB)."
        )
        suppress(self.api, "NIST.800.53.R5-APIGWCacheEnabledAndEncrypted", no_cache)
        checkov_skip(self.api.deployment_stage, "CKV_AWS_120", no_cache)
        suppress(
            self.api,
            "NIST.800.53.R5-APIGWSSLEnabled",
            "Client certificates authenticate API Gateway to an HTTP backend; the only integration here is "
            "a Lambda proxy, invoked through IAM.",
        )

        # One key and usage plan per API client (context 'api_clients'); the function maps the calling
        # key's id to the client's scopes (RG_API_CLIENTS, returnguard.access). Keys are tied to the stage
        # through their plan only, so the function can name them without a dependency cycle.
        self.api_keys: dict[str, apigw.ApiKey] = {}
        key_clients: list[dict[str, Any]] = []
        for name, scopes in config.api_clients.items():
            suffix = "" if name == "default" else f"-{name}"  # the first deploys' default key stays
            key = apigw.ApiKey(self.api, f"ApiKey{suffix}", api_key_name=f"{config.prefix}-{name}")
            plan = self.api.add_usage_plan(
                f"UsagePlan{suffix}",
                name=f"{config.prefix}-{name}",
                throttle=apigw.ThrottleSettings(
                    rate_limit=config.api_throttle.rate_limit, burst_limit=config.api_throttle.burst_limit
                ),
                quota=apigw.QuotaSettings(limit=config.api_throttle.quota_per_day, period=apigw.Period.DAY),
            )
            plan.add_api_key(key)
            plan.add_api_stage(stage=self.api.deployment_stage)
            self.api_keys[name] = key
            key_clients.append({"key_id": key.key_id, "client": name, "scopes": list(scopes)})
        self.api_key = next(iter(self.api_keys.values()))
        score.function.add_environment("RG_API_CLIENTS", self.to_json_string(key_clients))

        # The key of decision ids (returnguard.access.decision_id): generated at deploy, read once per
        # cold start. Not rotated: a new key renames every decision, so retries within the 90 days a
        # decision is kept would be decided afresh instead of finding their answer.
        self.decision_id_secret = secretsmanager.Secret(
            self,
            "DecisionIdSecret",
            description="Key of the risk-score API's decision ids (HMAC-SHA256)",
            encryption_key=props.key,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True
            ),
            removal_policy=removal_policy(config),
        )
        # on the role only (the stage key already lets it decrypt): a grant on the secret would also
        # change the key's policy in the data stack, which would then depend on this one
        score.role.add_to_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue"], resources=[self.decision_id_secret.secret_arn]
            )
        )
        score.function.add_environment("RG_DECISION_ID_SECRET_ARN", self.decision_id_secret.secret_arn)
        checkov_skip(
            self.decision_id_secret,
            "CKV2_AWS_57",
            "Not rotated on purpose: a new decision-id key would rename every stored decision, so "
            "retries and GET /v1/decisions/{id} would miss them.",
        )
        for rule in ("AwsSolutions-SMG4", "NIST.800.53.R5-SecretsManagerRotationEnabled"):
            suppress(
                self.decision_id_secret,
                rule,
                "Rotating the decision-id key would rename every stored decision: a retried POST would no "
                "longer find its answer and GET /v1/decisions/{id} would miss. It never leaves the function.",
            )

        if config.waf:
            self.web_acl = _web_acl(self, config)
            _waf_logging(self, config, props.key, self.web_acl)
            wafv2.CfnWebACLAssociation(
                self,
                "WebAclAssociation",
                resource_arn=self.api.deployment_stage.stage_arn,
                web_acl_arn=self.web_acl.attr_arn,
            )
        else:
            for rule in ("AwsSolutions-APIG3", "NIST.800.53.R5-APIGWAssociatedWithWAF"):
                suppress(self.api, rule, "WAF is off in this stage (context 'waf'; on by default in prod).")

        CfnOutput(
            self, "ApiUrl", value=self.api.url_for_path("/v1/risk-score"), description="POST risk scores here"
        )
        CfnOutput(
            self, "ApiBaseUrl", value=self.api.url, description="The API's base URL: returnguard --url <this>"
        )
        CfnOutput(self, "ApiKeyId", value=self.api_key.key_id, description="The first client's key")
        CfnOutput(
            self,
            "ApiClientKeys",
            value=self.to_json_string({name: key.key_id for name, key in self.api_keys.items()}),
            description="Each API client's key id (aws apigateway get-api-key --api-key <id> --include-value)",
        )
        CfnOutput(
            self,
            "ApiKeyValueCommand",
            value=f"aws apigateway get-api-key --api-key {self.api_key.key_id} --include-value "
            f"--query value --output text --region {Aws.REGION}",
            description="Run this to read the API key's value",
        )

    def bedrock_model(self, bedrock: BedrockConfig) -> tuple[str, list[str]]:
        """The model id the function calls and the ARNs it may invoke: the inference profile of the
        stack's geography and the foundation model in every Region that profile routes to (a request
        may be served in any of them); without a profile, the foundation model in this Region only."""

        def foundation_model(region: str) -> str:
            return f"arn:{self.partition}:bedrock:{region}::foundation-model/{bedrock.model_id}"

        if not bedrock.uses_profile:
            return bedrock.model_id, [foundation_model(self.region)]
        if not Token.is_unresolved(self.region):
            geography = bedrock.geography(self.region)
            profile_id = bedrock.invoked_id(self.region)
            routed = [foundation_model(r) for r in bedrock.profile_regions[geography]]
            return profile_id, [self._inference_profile_arn(profile_id), *routed]
        # The Region is known only at deploy: a mapping from each Region the profiles serve to its
        # geography picks the profile, and a condition per geography keeps only that geography's
        # foundation-model ARNs. (A Region outside the lists fails the deploy at the mapping.)
        geographies = CfnMapping(
            self,
            "BedrockGeography",
            mapping={
                region: {"profile": geography}
                for geography, regions in bedrock.profile_regions.items()
                for region in regions
            },
        )
        geography = geographies.find_in_map(Aws.REGION, "profile")
        profile_id = Fn.join(".", [geography, bedrock.model_id])
        resources = [self._inference_profile_arn(profile_id)]
        for name, regions in bedrock.profile_regions.items():
            condition = CfnCondition(
                self,
                f"BedrockIn{name.title()}",
                expression=Fn.condition_equals(geography, name),
            )
            resources += [
                Fn.condition_if(condition.logical_id, foundation_model(region), Aws.NO_VALUE).to_string()
                for region in regions
            ]
        return profile_id, resources

    def _inference_profile_arn(self, profile_id: str) -> str:
        return f"arn:{self.partition}:bedrock:{self.region}:{self.account}:inference-profile/{profile_id}"


API_KEY_HEADER = "x-api-key"
_NO_TRANSFORMATION = wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="NONE")

# What API Gateway answers itself, before the function runs, in the function's error shape
# ({"error": {"code", "message", "field"}}). Gateway-response templates cannot escape $context values,
# so messages are fixed text.
GATEWAY_ERRORS: tuple[tuple[apigw.ResponseType, str, str, str], ...] = (
    (apigw.ResponseType.THROTTLED, "429", "throttled", "too many requests, retry with backoff"),
    (apigw.ResponseType.QUOTA_EXCEEDED, "429", "throttled", "this API key's daily quota is used up"),
    (
        apigw.ResponseType.BAD_REQUEST_BODY,
        "422",
        "invalid_request",
        "the body is not JSON or does not match the RiskScoreRequest schema (docs/openapi.yaml)",
    ),
    (apigw.ResponseType.INVALID_API_KEY, "403", "forbidden", "missing or unknown x-api-key"),
    (apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN, "404", "not_found", "no such route"),
    (apigw.ResponseType.REQUEST_TOO_LARGE, "413", "body_too_large", "request body too large"),
    (
        apigw.ResponseType.UNSUPPORTED_MEDIA_TYPE,
        "415",
        "unsupported_media_type",
        "Content-Type must be application/json",
    ),
    (apigw.ResponseType.DEFAULT_4_XX, "", "bad_request", "the request was refused"),
    (apigw.ResponseType.DEFAULT_5_XX, "", "unavailable", "the service is unavailable, retry later"),
)


def _gateway_errors(api: apigw.RestApi) -> None:
    for response_type, status, code, message in GATEWAY_ERRORS:
        body = json.dumps({"error": {"code": code, "message": message, "field": None}})
        api.add_gateway_response(
            f"GatewayResponse{response_type.response_type.title().replace('_', '')}",
            type=response_type,
            status_code=status or None,
            templates={"application/json": body},
        )


def _json_schema(schema: dict[str, Any]) -> apigw.JsonSchema:
    """dict → apigw.JsonSchema, recursively (the schema lives as plain data in request_schema.py)."""
    types = {t.name.lower(): t for t in apigw.JsonSchemaType}
    kwargs: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "$schema":
            kwargs["schema"] = apigw.JsonSchemaVersion.DRAFT4
        elif key == "type":
            kwargs["type"] = [types[t] for t in value] if isinstance(value, list) else types[value]
        elif key == "properties":
            kwargs["properties"] = {name: _json_schema(sub) for name, sub in value.items()}
        elif key == "oneOf":
            kwargs["one_of"] = [_json_schema(sub) for sub in value]
        elif key == "items":  # a return's items
            kwargs["items"] = _json_schema(value)
        elif key == "additionalProperties":
            kwargs["additional_properties"] = value
        elif key in (
            "minLength",
            "maxLength",
            "minimum",
            "maximum",
            "exclusiveMinimum",
            "maxItems",
            "pattern",
            "required",
            "enum",
            "title",
        ):
            names = {
                "minLength": "min_length",
                "maxLength": "max_length",
                "exclusiveMinimum": "exclusive_minimum",
                "maxItems": "max_items",
            }
            kwargs[names.get(key, key)] = value
        else:
            raise ValueError(f"request schema keyword {key!r} is not mapped to API Gateway's JsonSchema")
    return apigw.JsonSchema(**kwargs)


def _web_acl(scope: Construct, config: StageConfig) -> wafv2.CfnWebACL:
    def managed(name: str, priority: int) -> wafv2.CfnWebACL.RuleProperty:
        return wafv2.CfnWebACL.RuleProperty(
            name=name,
            priority=priority,
            override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
            statement=wafv2.CfnWebACL.StatementProperty(
                managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                    vendor_name="AWS", name=name
                )
            ),
            visibility_config=_visibility(name),
        )

    api_key_header = wafv2.CfnWebACL.StatementProperty(
        size_constraint_statement=wafv2.CfnWebACL.SizeConstraintStatementProperty(
            field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(single_header={"Name": API_KEY_HEADER}),
            comparison_operator="GT",
            size=0,
            text_transformations=[_NO_TRANSFORMATION],
        )
    )
    # Merchant back-ends call from a few IPs: their limit is per API key, not per IP.
    per_key = wafv2.CfnWebACL.RuleProperty(
        name="per-api-key-rate-limit",
        priority=0,
        action=wafv2.CfnWebACL.RuleActionProperty(block={}),
        statement=wafv2.CfnWebACL.StatementProperty(
            rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                limit=config.waf_rate_limit_per_key,
                evaluation_window_sec=300,
                aggregate_key_type="CUSTOM_KEYS",
                custom_keys=[
                    wafv2.CfnWebACL.RateBasedStatementCustomKeyProperty(
                        header=wafv2.CfnWebACL.RateLimitHeaderProperty(
                            name=API_KEY_HEADER, text_transformations=[_NO_TRANSFORMATION]
                        )
                    )
                ],
            )
        ),
        visibility_config=_visibility("per-api-key-rate-limit"),
    )
    # Requests without an API key (GET /v1/health, probes) are limited per IP.
    per_ip = wafv2.CfnWebACL.RuleProperty(
        name="per-ip-rate-limit-without-api-key",
        priority=1,
        action=wafv2.CfnWebACL.RuleActionProperty(block={}),
        statement=wafv2.CfnWebACL.StatementProperty(
            rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                limit=config.waf_rate_limit_per_ip,
                evaluation_window_sec=300,
                aggregate_key_type="IP",
                scope_down_statement=wafv2.CfnWebACL.StatementProperty(
                    not_statement=wafv2.CfnWebACL.NotStatementProperty(statement=api_key_header)
                ),
            )
        ),
        visibility_config=_visibility("per-ip-rate-limit-without-api-key"),
    )
    return wafv2.CfnWebACL(
        scope,
        "WebAcl",
        scope="REGIONAL",
        default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
        rules=[
            per_key,
            per_ip,
            managed("AWSManagedRulesCommonRuleSet", 2),
            managed("AWSManagedRulesKnownBadInputsRuleSet", 3),
        ],
        visibility_config=_visibility(f"{config.prefix}-api"),
    )


def _waf_logging(scope: Stack, config: StageConfig, key: kms.IKey, web_acl: wafv2.CfnWebACL) -> None:
    """WAF logs to an encrypted `aws-waf-logs-<prefix>` log group: the requests it blocked or counted
    (allowed traffic is in the API's access logs), with the API key header redacted."""
    name = f"aws-waf-logs-{config.prefix}"  # WAF accepts only log groups named aws-waf-logs-*
    group = log_group(scope, "WafLogs", config=config, key=key, name=name)
    logging = wafv2.CfnLoggingConfiguration(
        scope,
        "WafLogging",
        resource_arn=web_acl.attr_arn,
        log_destination_configs=[
            scope.format_arn(
                service="logs",
                resource="log-group",
                resource_name=name,
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )
        ],
        redacted_fields=[
            wafv2.CfnLoggingConfiguration.FieldToMatchProperty(single_header={"Name": API_KEY_HEADER})
        ],
        logging_filter={
            "DefaultBehavior": "DROP",
            "Filters": [
                {
                    "Behavior": "KEEP",
                    "Requirement": "MEETS_ANY",
                    "Conditions": [
                        {"ActionCondition": {"Action": "BLOCK"}},
                        {"ActionCondition": {"Action": "COUNT"}},
                    ],
                }
            ],
        },
    )
    logging.node.add_dependency(group)


def _visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True
    )
