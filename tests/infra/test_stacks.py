"""Fine-grained assertions on the synthesized templates, per stack and per stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk.assertions import Match, Template

from returnguard.tables import ALL_TABLES
from stacks.config import PROFILE_REGIONS
from tests.infra.conftest import MODEL_CONFIG, SECRET_ARN

SCORE_ENV = {
    "RG_FEATURES_TABLE",
    "RG_DECISIONS_TABLE",
    "RG_EXPLANATIONS_TABLE",
    "RG_AUDIT_TABLE",
    "RG_ENDPOINT_NAME",
    "RG_MODEL_CONFIG",
    "RG_LAKE_BUCKET",
    "RG_POLICY",
    "RG_RETURN_POLICY",
    "RG_ORDER_TIME_PAST_S",
    "RG_ORDER_TIME_FUTURE_S",
    "RG_VARIANT_MODE",
    "RG_CHALLENGER_SHARE",
    "RG_VARIANT_SALT",
    "RG_API_CLIENTS",
    "RG_DECISION_ID_SECRET_ARN",
    "RG_BEDROCK_MODEL_ID",
    "RG_BEDROCK_GUARDRAIL_ID",
    "RG_BEDROCK_GUARDRAIL_VERSION",
    "RG_STAGE",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}


def template(synth, name: str) -> Template:
    return Template.from_stack(getattr(synth.stacks, name))


def resources(synth, name: str, type_: str) -> dict:
    return template(synth, name).find_resources(type_)


def functions(synth, name: str) -> list[dict]:
    found = resources(synth, name, "AWS::Lambda::Function")
    return [
        r["Properties"] for r in found.values() if r["Properties"].get("Handler") == "handler.lambda_handler"
    ]


# --- data -----------------------------------------------------------------------------------------------


def test_tables_follow_the_shared_definitions(dev):
    tables = list(resources(dev, "data", "AWS::DynamoDB::Table").values())
    assert len(tables) == len(ALL_TABLES)
    by_key = {json.dumps(t["Properties"]["KeySchema"], sort_keys=True): t["Properties"] for t in tables}
    for definition in ALL_TABLES:
        schema = [{"AttributeName": definition.partition_key.name, "KeyType": "HASH"}]
        if definition.sort_key:
            schema.append({"AttributeName": definition.sort_key.name, "KeyType": "RANGE"})
        props = by_key[json.dumps(schema, sort_keys=True)]
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["SSESpecification"]["SSEEnabled"] is True
        assert props["SSESpecification"]["SSEType"] == "KMS"
        if definition.ttl_attribute:
            assert props["TimeToLiveSpecification"] == {
                "AttributeName": definition.ttl_attribute,
                "Enabled": True,
            }
        else:
            assert "TimeToLiveSpecification" not in props
        assert [g["IndexName"] for g in props.get("GlobalSecondaryIndexes", [])] == [
            g.name for g in definition.global_indexes
        ]


@pytest.mark.parametrize(("stage", "policy", "pitr"), [("dev", "Delete", False), ("prod", "Retain", True)])
def test_removal_policy_and_pitr_per_stage(request, stage, policy, pitr):
    synth = request.getfixturevalue(stage)
    data = template(synth, "data")
    for type_ in ("AWS::DynamoDB::Table", "AWS::KMS::Key", "AWS::S3::Bucket"):
        for resource in data.find_resources(type_).values():
            assert resource["DeletionPolicy"] == policy, type_
    for table in data.find_resources("AWS::DynamoDB::Table").values():
        spec = table["Properties"]["PointInTimeRecoverySpecification"]
        assert spec["PointInTimeRecoveryEnabled"] is pitr
    auto_delete = data.find_resources("Custom::S3AutoDeleteObjects")
    assert bool(auto_delete) is (stage == "dev")


def test_key_rotates(dev):
    template(dev, "data").has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_lake_is_private_versioned_logged_tls_only_with_lifecycle(dev):
    data = template(dev, "data")
    data.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    Match.object_like(
                        {"ServerSideEncryptionByDefault": Match.object_like({"SSEAlgorithm": "aws:kms"})}
                    )
                ]
            },
            "VersioningConfiguration": {"Status": "Enabled"},
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "LoggingConfiguration": Match.object_like({"LogFilePrefix": "lake/"}),
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Prefix": "raw/",
                                "Transitions": [{"StorageClass": "GLACIER", "TransitionInDays": 730}],
                            }
                        ),
                        Match.object_like({"Prefix": "processed/features/", "ExpirationInDays": 365}),
                        Match.object_like({"NoncurrentVersionExpiration": {"NoncurrentDays": 30}}),
                    ]
                )
            },
        },
    )
    policies = data.find_resources("AWS::S3::BucketPolicy")
    denies = [
        s
        for p in policies.values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny"
        and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
    ]
    assert len(denies) == 2  # lake and access-log bucket


# --- streaming ------------------------------------------------------------------------------------------


def test_stream_is_kms_encrypted_and_consumer_fails_partially_into_an_encrypted_dlq(dev):
    streaming = template(dev, "streaming")
    streaming.has_resource_properties(
        "AWS::Kinesis::Stream", {"StreamEncryption": {"EncryptionType": "KMS", "KeyId": Match.any_value()}}
    )
    streaming.has_resource_properties("AWS::SQS::Queue", {"KmsMasterKeyId": Match.any_value()})
    streaming.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "BatchSize": 100,
            "BisectBatchOnFunctionError": True,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "MaximumRetryAttempts": 3,
            "MaximumRecordAgeInSeconds": 21600,
            "ParallelizationFactor": 1,  # exactly-once bookkeeping needs a shard's records in order
            "DestinationConfig": {"OnFailure": {"Destination": Match.any_value()}},
        },
    )
    (consumer,) = functions(dev, "streaming")
    env = consumer["Environment"]["Variables"]
    assert {
        "RG_FEATURES_TABLE",
        "RG_IDEMPOTENCY_TABLE",
        "RG_LAKE_BUCKET",
        "RG_DLQ_URL",
        "RG_STAGE",
        "POWERTOOLS_SERVICE_NAME",
    } <= set(env)
    assert env["RG_STAGE"] == "dev"
    assert env["RG_RETURN_WINDOW_DAYS"] == "30"  # the order# records' TTL, as the score function's
    sends = [s for s in _statements(dev, "streaming") if "sqs:SendMessage" in _list(s["Action"])]
    assert sends, "poison records are sent to the dead-letter queue by the function itself"


# --- api ------------------------------------------------------------------------------------------------


def test_score_function_runtime_memory_timeout_env_and_layer(dev):
    (score,) = functions(dev, "api")
    assert score["Runtime"] == "python3.12"
    assert score["MemorySize"] <= 512
    assert score["Timeout"] <= 29
    assert score["TracingConfig"] == {"Mode": "Active"}
    env = score["Environment"]["Variables"]
    assert set(env) == SCORE_ENV
    assert json.loads(env["RG_MODEL_CONFIG"]) == MODEL_CONFIG
    assert env["POWERTOOLS_SERVICE_NAME"] == "returnguard"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "ReturnGuard"
    assert env["RG_BEDROCK_MODEL_ID"] == ""  # the dev test context turns Bedrock off
    layer = json.dumps(score["Layers"])
    assert ":017000801446:layer:AWSLambdaPowertoolsPythonV3-python312-x86_64:" in layer


def test_the_score_function_reads_the_serving_profiles_and_nothing_else_of_the_lake(dev):
    reads = [s for s in _statements(dev, "api") if any(a.startswith("s3:") for a in _list(s["Action"]))]
    assert [_list(s["Action"]) for s in reads] == [["s3:GetObject"]]
    assert json.dumps(reads[0]["Resource"]).endswith('/models/serving/*"]]}')


def test_a_decision_fits_the_function_timeout_which_fits_api_gateway(dev, prod):
    from returnguard.aws.clients import DECISION_BUDGET_S, DYNAMODB, HEALTH_BUDGET_S, SAGEMAKER

    api_gateway_integration_timeout_s = 29
    # a hung model (its one call timing out) still leaves the feature read and two writes an attempt
    assert SAGEMAKER.worst_case_s + 3 * DYNAMODB.attempt_s <= DECISION_BUDGET_S
    assert DYNAMODB.worst_case_s <= DECISION_BUDGET_S
    for synth in (dev, prod):
        (score,) = functions(synth, "api")
        # every AWS call of a request ends inside the budget; the rest is room for our own code
        assert (
            max(DECISION_BUDGET_S, HEALTH_BUDGET_S) + 2
            <= score["Timeout"]
            < api_gateway_integration_timeout_s
        )


def test_throttling_and_quota_come_from_config(dev, prod):
    for synth in (dev, prod):
        throttle = synth.config.api_throttle
        api = template(synth, "api")
        api.has_resource_properties(
            "AWS::ApiGateway::UsagePlan",
            {
                "Throttle": {"RateLimit": throttle.rate_limit, "BurstLimit": throttle.burst_limit},
                "Quota": {"Limit": throttle.quota_per_day, "Period": "DAY"},
            },
        )
        api.has_resource_properties(
            "AWS::ApiGateway::Stage",
            {
                "AccessLogSetting": Match.object_like({"DestinationArn": Match.any_value()}),
                "MethodSettings": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "ThrottlingRateLimit": throttle.rate_limit,
                                "ThrottlingBurstLimit": throttle.burst_limit,
                            }
                        )
                    ]
                ),
            },
        )
    assert prod.config.api_throttle.rate_limit != dev.config.api_throttle.rate_limit


def test_risk_score_post_requires_key_and_validates_body(dev):
    api = template(dev, "api")
    models = api.find_resources("AWS::ApiGateway::Model")
    (model,) = models.values()
    shapes = model["Properties"]["Schema"]["oneOf"]  # one body shape per event type
    by_type = {shape["properties"]["event_type"]["enum"][0]: shape for shape in shapes}
    assert sorted(by_type) == ["order", "payment", "return"] and len(shapes) == 3
    orders, returns = by_type["order"], by_type["return"]
    assert set(returns["properties"]["return"]["required"]) >= {"return_id", "order_id", "refund_amount"}
    assert set(orders["properties"]["order"]["required"]) >= {
        "order_id",
        "customer_id",
        "product_id",
        "amount",
        "currency",
        "payment_method",
    }
    api.has_resource_properties(
        "AWS::ApiGateway::Method",
        {
            "HttpMethod": "POST",
            "ApiKeyRequired": True,
            "RequestValidatorId": Match.any_value(),
            "RequestModels": {"application/json": Match.any_value()},
        },
    )
    paths = {r["Properties"]["PathPart"] for r in api.find_resources("AWS::ApiGateway::Resource").values()}
    assert {"v1", "risk-score", "decisions", "{decision_id}", "health"} <= paths
    # every other method on those paths reaches the function (405 + Allow), and only with a key
    any_methods = [
        m["Properties"]
        for m in api.find_resources("AWS::ApiGateway::Method").values()
        if m["Properties"]["HttpMethod"] == "ANY"
    ]
    assert len(any_methods) == 3
    assert all(m["ApiKeyRequired"] is True and m["Integration"]["Type"] == "AWS_PROXY" for m in any_methods)


def test_waf_only_in_prod(dev, prod):
    assert not resources(dev, "api", "AWS::WAFv2::WebACL")
    assert len(resources(prod, "api", "AWS::WAFv2::WebACLAssociation")) == 1


def test_no_bedrock_permission_when_off(dev):
    actions = [a for s in _statements(dev, "api") for a in _list(s["Action"])]
    assert not [a for a in actions if a.startswith("bedrock:")]


def test_bedrock_model_follows_the_region_when_known_only_at_deploy(prod):
    # Given a region-agnostic synth (no CDK_DEFAULT_REGION), then the function calls the inference
    # profile of the deploy region's geography, and IAM keeps, by condition, the foundation model in
    # exactly the Regions that geography's profile routes to, plus the profile and the guardrail.
    api = template(prod, "api")
    (score,) = functions(prod, "api")
    model_id = json.dumps(score["Environment"]["Variables"]["RG_BEDROCK_MODEL_ID"])
    assert "BedrockGeography" in model_id and "amazon.nova-lite-v1:0" in model_id
    mapping = api.to_json()["Mappings"]["BedrockGeography"]
    assert mapping == {
        region: {"profile": geography} for geography, regions in PROFILE_REGIONS.items() for region in regions
    }
    statements = _statements(prod, "api")
    (invoke,) = [s for s in statements if "bedrock:InvokeModel" in _list(s["Action"])]
    by_condition: dict[str, set[str]] = {}
    unconditional = []
    for resource in invoke["Resource"]:
        if "Fn::If" in resource:
            condition, arn, _ = resource["Fn::If"]
            by_condition.setdefault(condition, set()).add(json.dumps(arn))
        else:
            unconditional.append(json.dumps(resource))
    (profile,) = unconditional
    assert "inference-profile/" in profile and "BedrockGeography" in profile
    for geography, regions in PROFILE_REGIONS.items():
        (condition,) = [c for c in by_condition if c.startswith(f"BedrockIn{geography.title()}")]
        assert by_condition[condition] == {
            json.dumps(
                {
                    "Fn::Join": [
                        "",
                        [
                            "arn:",
                            {"Ref": "AWS::Partition"},
                            f":bedrock:{region}::foundation-model/amazon.nova-lite-v1:0",
                        ],
                    ]
                }
            )
            for region in regions
        }
    conditions = api.to_json()["Conditions"]
    assert (
        json.dumps(conditions[next(c for c in by_condition if c.startswith("BedrockInApac"))]).count("apac")
        == 1
    )
    resources_ = json.dumps(
        [s["Resource"] for s in statements if "bedrock:ApplyGuardrail" in _list(s["Action"])]
    )
    assert "guardrail/gr-abc123" in resources_
    assert "*" not in json.dumps(invoke["Resource"])


def _plain(value) -> str:
    """An ARN built with Fn::Join over the partition, as the text it becomes in the aws partition."""
    if isinstance(value, str):
        return value
    (parts,) = [value["Fn::Join"][1]]
    return "".join("aws" if part == {"Ref": "AWS::Partition"} else part for part in parts)


def _api_in(region: str, fake_model_dir, **context) -> Template:
    from aws_cdk import App, Environment

    from stacks import config as stage_config
    from stacks.api import ApiProps, ApiStack
    from stacks.data import DataProps, DataStack

    config = stage_config.load(
        {"model_dir": str(fake_model_dir), "bedrock_model_id": "amazon.nova-lite-v1:0", **context},
        {"CDK_DEFAULT_REGION": region, "CDK_DEFAULT_ACCOUNT": "123456789012"},
    )
    app = App()
    env = Environment(region=region, account="123456789012")
    data = DataStack(app, "Data", props=DataProps(config=config), env=env)
    props = ApiProps(
        config=config,
        key=data.key,
        tables=dict(data.tables),
        endpoint_name="e",
        endpoint_arn=f"arn:aws:sagemaker:{region}:123456789012:endpoint/e",
        lake=data.lake,
    )
    return Template.from_stack(ApiStack(app, "Api", props=props, env=env))


@pytest.mark.parametrize(
    ("region", "profile", "routed"),
    [
        ("us-east-1", "us.amazon.nova-lite-v1:0", ("us-east-1", "us-east-2", "us-west-2")),
        (
            "ap-south-1",
            "apac.amazon.nova-lite-v1:0",
            ("ap-northeast-1", "ap-northeast-2", "ap-south-1", "ap-southeast-1", "ap-southeast-2"),
        ),
    ],
)
def test_bedrock_grant_is_the_profile_and_the_model_in_every_region_it_routes_to(
    fake_model_dir, region, profile, routed
):
    api = _api_in(region, fake_model_dir)
    (score,) = [
        f["Properties"]
        for f in api.find_resources("AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "handler.lambda_handler"
    ]
    assert score["Environment"]["Variables"]["RG_BEDROCK_MODEL_ID"] == profile
    statements = [
        s
        for p in api.find_resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if any(a.startswith("bedrock:") for a in _list(s["Action"]))
    ]
    (invoke,) = statements
    assert invoke["Action"] == "bedrock:InvokeModel"
    assert sorted(map(_plain, _list(invoke["Resource"]))) == sorted(
        [
            f"arn:aws:bedrock:{region}:123456789012:inference-profile/{profile}",
            *(f"arn:aws:bedrock:{r}::foundation-model/amazon.nova-lite-v1:0" for r in routed),
        ]
    )


def test_without_a_profile_the_grant_is_the_model_in_this_region_only(fake_model_dir):
    api = _api_in("us-east-1", fake_model_dir, bedrock_inference_profile="none")
    statements = [
        s
        for p in api.find_resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if "bedrock:InvokeModel" in _list(s["Action"])
    ]
    assert [_plain(s["Resource"]) for s in statements] == [
        "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0"
    ]


def test_outputs_name_api_key_and_how_to_read_it(dev):
    outputs = template(dev, "api").find_outputs("*")
    assert {"ApiUrl", "ApiKeyId", "ApiKeyValueCommand"} <= set(outputs)
    assert "EndpointName" in template(dev, "ml").find_outputs("*")
    assert "LakeBucket" in template(dev, "data").find_outputs("*")
    assert "StreamName" in template(dev, "streaming").find_outputs("*")
    assert "DashboardUrl" in template(dev, "monitoring").find_outputs("*")


def test_base_url_output_is_what_the_cli_takes(dev):
    # the CLI appends /v1/risk-score itself: given ApiUrl (which already ends in it) it answered 404
    outputs = template(dev, "api").find_outputs("*")
    base = json.dumps(outputs["ApiBaseUrl"]["Value"])
    assert "v1" not in base and base.endswith('"/"]]}')
    assert json.dumps(outputs["ApiUrl"]["Value"]).endswith('/v1/risk-score"]]}')


# --- ml -------------------------------------------------------------------------------------------------


def test_endpoint_config_is_serverless_in_dev_and_realtime_with_capture_in_prod(dev, prod):
    (dev_config,) = resources(dev, "ml", "AWS::SageMaker::EndpointConfig").values()
    variant = dev_config["Properties"]["ProductionVariants"][0]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    assert "DataCaptureConfig" not in dev_config["Properties"]
    (prod_config,) = resources(prod, "ml", "AWS::SageMaker::EndpointConfig").values()
    variant = prod_config["Properties"]["ProductionVariants"][0]
    assert variant["InstanceType"] == prod.config.endpoint.instance_type
    assert variant["InitialInstanceCount"] == prod.config.endpoint.instance_count
    assert prod_config["Properties"]["DataCaptureConfig"]["EnableCapture"] is True
    assert "KmsKeyId" in prod_config["Properties"]


def test_model_points_at_sourcedir_asset_and_region_mapped_image(dev):
    ml = template(dev, "ml")
    (model,) = ml.find_resources("AWS::SageMaker::Model").values()
    container = model["Properties"]["PrimaryContainer"]
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    submit = json.dumps(container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"])
    model_data = json.dumps(container["ModelDataUrl"])
    assert submit.startswith('{"Fn::Sub": "s3://cdk-') and submit.endswith('.gz"}')
    assert submit != model_data  # sourcedir.tar.gz and model.tar.gz are two assets
    assert "Fn::FindInMap" in json.dumps(container["Image"])
    mapping = ml.to_json()["Mappings"]["XgboostRegistry"]
    assert mapping["us-east-1"]["account"] == "683313688378"
    assert mapping["ap-south-1"]["account"] == "720646828776"
    assert len(mapping) > 20
    ml.resource_count_is("AWS::SageMaker::ModelPackageGroup", 1)
    ml.resource_count_is("AWS::SageMaker::Endpoint", 1)


# --- etl, pipeline, monitoring, blocklist ---------------------------------------------------------------


def test_glue_jobs_are_5_0_with_bookmarks_domain_zip_and_kms_security_configuration(dev):
    etl = template(dev, "etl")
    jobs = etl.find_resources("AWS::Glue::Job")
    assert len(jobs) == 2
    for job in jobs.values():
        props = job["Properties"]
        assert props["GlueVersion"] == "5.0"
        assert props["DefaultArguments"]["--job-bookmark-option"] == "job-bookmark-enable"
        assert ".zip" in json.dumps(props["DefaultArguments"]["--extra-py-files"])
        assert props["SecurityConfiguration"]
    etl.has_resource_properties(
        "AWS::Glue::SecurityConfiguration",
        {
            "EncryptionConfiguration": {
                "S3Encryptions": [Match.object_like({"S3EncryptionMode": "SSE-KMS"})],
                "CloudWatchEncryption": Match.object_like({"CloudWatchEncryptionMode": "SSE-KMS"}),
                "JobBookmarksEncryption": Match.object_like({"JobBookmarksEncryptionMode": "CSE-KMS"}),
            }
        },
    )
    assert len(etl.find_resources("AWS::Glue::Crawler")) == 2


def test_the_policy_context_reaches_the_score_function_and_the_rules_job_alike(dev, prod):
    for synth, policy, velocity_orders in (
        (dev, {}, "2"),
        (prod, {"velocity_orders": 3, "critical": 0.95}, "3"),
    ):
        (score,) = functions(synth, "api")
        assert json.loads(score["Environment"]["Variables"]["RG_POLICY"]) == policy
        jobs = template(synth, "etl").find_resources("AWS::Glue::Job")
        (rules,) = [j["Properties"] for j in jobs.values() if j["Properties"]["Name"].endswith("-rules")]
        assert rules["DefaultArguments"]["--velocity_orders"] == velocity_orders


def test_each_api_client_has_its_own_key_and_plan_and_the_function_knows_its_scopes(dev, prod):
    for synth, clients in (
        (dev, {"default": ["score", "read_own"]}),
        (prod, {"default": ["score", "read_own"], "console": ["read_all"]}),
    ):
        api = template(synth, "api")
        keys = api.find_resources("AWS::ApiGateway::ApiKey")
        plans = api.find_resources("AWS::ApiGateway::UsagePlan")
        plan_keys = api.find_resources("AWS::ApiGateway::UsagePlanKey")
        assert len(keys) == len(plans) == len(plan_keys) == len(clients)
        assert {k["Properties"]["Name"].rsplit("-", 1)[1] for k in keys.values()} == set(clients)
        (score,) = functions(synth, "api")
        mapping = json.dumps(score["Environment"]["Variables"]["RG_API_CLIENTS"])
        for logical_id in keys:
            assert logical_id in mapping  # the function maps every key's id ...
        for name, scopes in clients.items():  # ... to its client and scopes
            entry = json.dumps({"client": name, "scopes": scopes}, separators=(",", ":"))[1:-1]
            assert entry.replace('"', '\\"') in mapping


def test_decision_ids_are_keyed_by_a_secret_generated_at_deploy_and_read_by_the_function_only(dev):
    api = template(dev, "api")
    (secret,) = api.find_resources("AWS::SecretsManager::Secret").values()
    assert secret["Properties"]["GenerateSecretString"]["PasswordLength"] >= 32
    assert "KmsKeyId" in secret["Properties"]
    (score,) = functions(dev, "api")
    (logical_id,) = api.find_resources("AWS::SecretsManager::Secret")
    assert score["Environment"]["Variables"]["RG_DECISION_ID_SECRET_ARN"] == {"Ref": logical_id}
    reads = [
        s
        for policy in api.find_resources("AWS::IAM::Policy").values()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if "secretsmanager:GetSecretValue" in json.dumps(s["Action"])
    ]
    assert reads and all(s["Resource"] == {"Ref": logical_id} for s in reads)


def test_the_order_time_window_reaches_the_score_function(dev):
    (score,) = functions(dev, "api")
    variables = score["Environment"]["Variables"]
    assert (variables["RG_ORDER_TIME_PAST_S"], variables["RG_ORDER_TIME_FUTURE_S"]) == ("604800", "300")


def test_retraining_state_machine_gates_and_schedule_per_stage(dev, prod):
    for synth, enabled in ((dev, "DISABLED"), (prod, "ENABLED")):
        pipeline = template(synth, "pipeline")
        pipeline.has_resource_properties("AWS::Events::Rule", {"State": enabled})
        (machine,) = pipeline.find_resources("AWS::StepFunctions::StateMachine").values()
        definition = json.dumps(machine["Properties"]["DefinitionString"])
        for step in (
            "BuildFeatures",
            "ServingModel",
            "Train",
            "GateCandidate",
            "RegisterModel",
            "RegisterLanePromotion",
            "PromoteEndpoint",
        ):
            assert step in definition
        assert machine["Properties"]["TracingConfiguration"] == {"Enabled": True}
        assert machine["Properties"]["LoggingConfiguration"]["Level"] == "ALL"
    # a lane promotion's archive is the only model archive the pipeline writes itself (the gate function):
    # one prefix of models/artifacts/, never the training jobs' folders
    writes = [
        json.dumps(s["Resource"])
        for s in _statements(dev, "pipeline")
        if "s3:PutObject" in _list(s["Action"]) and "/models/artifacts/" in json.dumps(s["Resource"])
    ]
    assert writes and all('/models/artifacts/lane-promotions/*"' in w for w in writes), writes
    assert not [w for w in writes if '/models/artifacts/*"' in w]


def test_alarms_go_to_an_encrypted_topic_with_email_in_prod(dev, prod):
    monitoring = template(prod, "monitoring")
    monitoring.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})
    monitoring.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "alerts@example.com"}
    )
    alarms = monitoring.find_resources("AWS::CloudWatch::Alarm")
    assert len(alarms) >= 6
    assert all(a["Properties"]["AlarmActions"] for a in alarms.values())
    assert not resources(dev, "monitoring", "AWS::SNS::Subscription")
    monitoring.resource_count_is("AWS::CloudWatch::Dashboard", 1)


def test_the_dashboard_plots_every_metric_the_functions_emit(dev):
    (dashboard,) = resources(dev, "monitoring", "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    emitted = {
        "Decisions", "DecisionsByAction", "DecisionLatency", "ModelFallback", "ExplanationFallback",
        "EventsApplied", "DuplicateEvents", "PoisonRecords", "RecordsRetried",
    }  # fmt: skip
    assert {name for name in emitted if f'\\"{name}\\"' in body} == emitted


def test_blocklist_sync_exists_only_with_a_database(dev, prod):
    assert dev.stacks.blocklist is None
    (sync,) = functions(prod, "blocklist")
    env = sync["Environment"]["Variables"]
    assert {"RG_FEATURES_TABLE", "RG_LAKE_BUCKET", "RG_DB_SECRET_ARN", "RG_DB_NAME", "RG_STAGE"} <= set(env)
    assert env["RG_DB_SECRET_ARN"] == SECRET_ARN
    assert sync["VpcConfig"]["SubnetIds"] == ["subnet-aaaa1111", "subnet-bbbb2222"]
    statements = _statements(prod, "blocklist")
    secret = [s for s in statements if "secretsmanager:GetSecretValue" in _list(s["Action"])]
    assert json.dumps(secret[0]["Resource"]) == json.dumps(SECRET_ARN)
    puts = [s for s in statements if "s3:PutObject" in _list(s["Action"])]
    assert "/raw/blocklist/*" in json.dumps(puts[0]["Resource"])
    template(prod, "blocklist").has_resource_properties(
        "AWS::Events::Rule", {"ScheduleExpression": "rate(5 minutes)"}
    )
    # the function imports pymysql, which neither the runtime nor the Powertools layer has: it ships in the asset
    (folder,) = [
        p
        for p in Path(prod.assembly_dir).glob("asset.*")
        if (p / "handler.py").is_file() and "blocklist" in (p / "handler.py").read_text()
    ]
    assert (folder / "pymysql" / "__init__.py").is_file() and (
        folder / "pymysql" / "connections.py"
    ).is_file()


# --- cross-cutting --------------------------------------------------------------------------------------


def _list(value) -> list:
    return value if isinstance(value, list) else [value]


def _statements(synth, name: str) -> list[dict]:
    policies = resources(synth, name, "AWS::IAM::Policy")
    return [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_no_wildcard_actions_anywhere(request, stage):
    synth = request.getfixturevalue(stage)
    for stack in synth.stacks.all():
        for statement in _statements(synth, _attr(synth, stack)):
            for action in _list(statement["Action"]):
                assert action != "*" and not action.endswith(":*"), (stack.stack_name, action)


def test_invoke_endpoint_is_scoped_to_the_scoring_endpoint(dev):
    invoke = [s for s in _statements(dev, "api") if "sagemaker:InvokeEndpoint" in _list(s["Action"])]
    assert len(invoke) == 1
    assert "endpoint/returnguard-dev-scoring" in json.dumps(invoke[0]["Resource"])


def test_every_log_group_has_retention(dev):
    for stack in dev.stacks.all():
        for group in resources(dev, _attr(dev, stack), "AWS::Logs::LogGroup").values():
            assert group["Properties"]["RetentionInDays"] == 7
            assert group["DeletionPolicy"] == "Delete"


def test_assets_need_no_docker_and_lambda_folder_is_small_with_domain(dev):
    for manifest in Path(dev.assembly_dir).glob("*.assets.json"):
        assert json.loads(manifest.read_text()).get("dockerImages", {}) == {}, manifest.name
    (score,) = functions(dev, "api")
    folders = [
        p for p in Path(dev.assembly_dir).glob("asset.*") if p.is_dir() and (p / "handler.py").exists()
    ]
    assert folders
    for folder in folders:
        assert (folder / "returnguard" / "tables.py").is_file()
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        assert size < 5 * 1024 * 1024


def _attr(synth, stack) -> str:
    for name in (
        "data",
        "streaming",
        "etl",
        "ml",
        "api",
        "pipeline",
        "monitoring",
        "blocklist",
        "batch",
        "retention",
        "console",
    ):
        if getattr(synth.stacks, name) is stack:
            return name
    raise KeyError(stack.stack_name)


def test_image_is_resolved_at_synth_when_the_region_is_known(fake_model_dir):
    # Given a region from CDK_DEFAULT_REGION, when only the data and ml stacks are built,
    # then the model image names that region's registry account directly.
    from aws_cdk import App, Environment

    from stacks import config as stage_config
    from stacks.data import DataProps, DataStack
    from stacks.ml import MlProps, MlStack

    config = stage_config.load({"model_dir": str(fake_model_dir)}, {"CDK_DEFAULT_REGION": "ap-south-1"})
    app = App()
    env = Environment(region=config.region)
    data = DataStack(app, "Data", props=DataProps(config=config), env=env)
    ml = MlStack(app, "Ml", props=MlProps(config=config, key=data.key, lake=data.lake), env=env)
    (model,) = Template.from_stack(ml).find_resources("AWS::SageMaker::Model").values()
    image = json.dumps(model["Properties"]["PrimaryContainer"]["Image"])
    assert "720646828776.dkr.ecr.ap-south-1." in image and "sagemaker-xgboost:3.0-5" in image
    assert "FindInMap" not in image


def test_gateway_answers_in_the_api_error_shape(dev):
    """Throttling, quota, a body the request model refuses, a bad key: what API Gateway itself answers
    has the function's {"error": {"code", "message", "field"}} shape and the documented status."""
    found = resources(dev, "api", "AWS::ApiGateway::GatewayResponse")
    by_type = {r["Properties"]["ResponseType"]: r["Properties"] for r in found.values()}
    expected = {
        "THROTTLED": "429",
        "QUOTA_EXCEEDED": "429",
        "BAD_REQUEST_BODY": "422",
        "INVALID_API_KEY": "403",
    }
    for response_type, status in expected.items():
        assert by_type[response_type]["StatusCode"] == status
    for properties in by_type.values():
        body = json.loads(properties["ResponseTemplates"]["application/json"])
        assert set(body["error"]) == {"code", "message", "field"}
    assert (
        json.loads(by_type["THROTTLED"]["ResponseTemplates"]["application/json"])["error"]["code"]
        == "throttled"
    )
    assert "StatusCode" not in by_type["DEFAULT_5XX"]  # keeps the status API Gateway chose


def test_the_fallback_model_ships_inside_the_score_function(dev, fake_model_dir):
    (score,) = functions(dev, "api")
    asset = dev.assembly_dir / f"asset.{score['Code']['S3Key'].removesuffix('.zip')}"
    assert (asset / "handler.py").is_file() and (asset / "returnguard" / "fallback.py").is_file()
    shipped = json.loads((asset / "fallback_model.json").read_text())
    assert shipped == json.loads((fake_model_dir / "fallback_model.json").read_text())
