"""Security properties of the synthesized templates: encrypted logs, log levels, WAF keys and logging,
least-privilege IAM, the blocklist function's network path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from returnguard.order_record import order_record_key
from returnguard.payments import card_velocity_key, customer_velocity_key
from returnguard.tables import recent_orders_key
from stacks.config import ConfigError, load
from tests.infra.test_stacks import resources


def _all_stacks(synth):
    return [(stack.stack_name, stack) for stack in synth.stacks.all()]


def _statements(synth, name: str) -> list[dict]:
    return [
        statement
        for policy in resources(synth, name, "AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _list(value) -> list:
    return value if isinstance(value, list) else [value]


# --- logs -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_every_log_group_is_encrypted_with_the_stage_key(request, stage):
    synth = request.getfixturevalue(stage)
    groups = 0
    for stack in synth.stacks.all():
        for logical_id, group in resources(synth, _name(synth, stack), "AWS::Logs::LogGroup").items():
            groups += 1
            key = json.dumps(group["Properties"].get("KmsKeyId"))
            assert "Key" in key, f"{stack.stack_name}/{logical_id} is not encrypted with the stage key"
    assert groups >= 4


def test_the_key_lets_cloudwatch_logs_use_it_for_this_accounts_log_groups_only(dev):
    (key,) = resources(dev, "data", "AWS::KMS::Key").values()
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    (logs,) = [s for s in statements if "logs." in json.dumps(s["Principal"])]
    condition = logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    assert ":logs:" in json.dumps(condition) and ":*" in json.dumps(condition)


@pytest.mark.parametrize(("stage", "level"), [("dev", "INFO"), ("prod", "ERROR")])
def test_api_execution_logging_is_error_in_prod(request, stage, level):
    synth = request.getfixturevalue(stage)
    (api_stage,) = resources(synth, "api", "AWS::ApiGateway::Stage").values()
    (settings,) = api_stage["Properties"]["MethodSettings"]
    assert settings["LoggingLevel"] == level
    assert settings["DataTraceEnabled"] is False


# --- WAF ------------------------------------------------------------------------------------------------


def test_waf_rate_limit_is_per_api_key_and_per_ip_only_without_a_key(prod):
    (acl,) = resources(prod, "api", "AWS::WAFv2::WebACL").values()
    rated = {
        rule["Name"]: rule["Statement"]["RateBasedStatement"]
        for rule in acl["Properties"]["Rules"]
        if "RateBasedStatement" in rule["Statement"]
    }
    per_key = rated["per-api-key-rate-limit"]
    assert per_key["AggregateKeyType"] == "CUSTOM_KEYS"
    assert per_key["CustomKeys"] == [
        {"Header": {"Name": "x-api-key", "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}}
    ]
    assert per_key["Limit"] == int(prod.config.api_throttle.rate_limit * 300)  # usage-plan rate, 5 min
    ip_rules = [r for r in rated.values() if r["AggregateKeyType"] == "IP"]
    assert len(ip_rules) == 1
    scope = ip_rules[0]["ScopeDownStatement"]["NotStatement"]["Statement"]["SizeConstraintStatement"]
    assert scope["FieldToMatch"] == {"SingleHeader": {"Name": "x-api-key"}}
    assert (scope["ComparisonOperator"], scope["Size"]) == ("GT", 0)


def test_waf_limits_and_execution_log_level_are_stage_settings(fake_model_dir):
    context = {"stage": "prod", "model_dir": str(fake_model_dir)}
    defaults = load(context, {})
    assert (defaults.waf_rate_limit_per_key, defaults.waf_rate_limit_per_ip) == (150_000, 2000)
    assert defaults.api_execution_log_level == "ERROR"
    config = load({**context, "waf_rate_limit_per_key": "900000", "api_execution_log_level": "INFO"}, {})
    assert (config.waf_rate_limit_per_key, config.api_execution_log_level) == (900_000, "INFO")
    with pytest.raises(ConfigError, match="waf_rate_limit_per_ip"):
        load({**context, "waf_rate_limit_per_ip": "10"}, {})


def test_waf_logs_blocked_requests_to_an_encrypted_aws_waf_logs_group_without_the_api_key(prod):
    groups = resources(prod, "api", "AWS::Logs::LogGroup")
    (waf_group,) = [
        g for g in groups.values() if str(g["Properties"].get("LogGroupName", "")).startswith("aws-waf-logs-")
    ]
    assert waf_group["Properties"]["KmsKeyId"]
    (logging,) = resources(prod, "api", "AWS::WAFv2::LoggingConfiguration").values()
    properties = logging["Properties"]
    destination = json.dumps(properties["LogDestinationConfigs"])
    assert f"log-group:aws-waf-logs-{prod.config.prefix}" in destination and ":*" not in destination
    assert {"SingleHeader": {"Name": "x-api-key"}} in properties["RedactedFields"]
    assert properties["LoggingFilter"]["DefaultBehavior"] == "DROP"


def _name(synth, stack) -> str:
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
    raise AssertionError(stack.stack_name)


# --- dead letters and Serverless findings ---------------------------------------------------------------


def test_blocklist_sync_failures_land_in_an_encrypted_dead_letter_queue(prod):
    (function,) = [
        f
        for f in resources(prod, "blocklist", "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "handler.lambda_handler"
    ]
    assert "DeadLetterConfig" in function["Properties"]
    (rule,) = resources(prod, "blocklist", "AWS::Events::Rule").values()
    (target,) = rule["Properties"]["Targets"]
    assert "DeadLetterConfig" in target
    (queue,) = resources(prod, "blocklist", "AWS::SQS::Queue").values()
    assert queue["Properties"]["KmsMasterKeyId"]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_schedules_and_alert_subscription_have_dead_letter_queues(request, stage):
    synth = request.getfixturevalue(stage)
    for rule in resources(synth, "pipeline", "AWS::Events::Rule").values():
        assert all("DeadLetterConfig" in target for target in rule["Properties"]["Targets"])
    for subscription in resources(synth, "monitoring", "AWS::SNS::Subscription").values():
        assert "RedrivePolicy" in subscription["Properties"]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_every_dead_letter_queue_alarms_to_the_alert_topic(request, stage):
    # Given every dead-letter queue of the stage (the stream's, the retraining schedule's, the decision
    # archive's, the drift schedule's, the batch stack's, in prod also the blocklist sync's) but the alert
    # subscription's own, which cannot alarm through the topic it backs up
    synth = request.getfixturevalue(stage)
    queues = sum(
        len(resources(synth, _name(synth, stack), "AWS::SQS::Queue")) for stack in synth.stacks.all()
    )
    queues -= len(resources(synth, "monitoring", "AWS::SNS::Subscription"))  # the alert subscription's
    alarms = resources(synth, "monitoring", "AWS::CloudWatch::Alarm").values()
    on_queues = [a["Properties"] for a in alarms if a["Properties"].get("Namespace") == "AWS/SQS"]
    described = sorted(a["AlarmDescription"] for a in on_queues)
    # Then each has an alarm on its visible messages, sent to the alerts topic
    assert len(on_queues) == queues, described
    assert "Messages in the dead-letter queue of the weekly retraining schedule" in described
    assert "Messages in the dead-letter queue of the drift job's daily schedule" in described
    assert any("expired decisions" in d for d in described)  # the decision archive's
    assert "Messages in the dead-letter queue of the batch upload rule" in described
    if stage == "prod":
        assert "Messages in the dead-letter queue of the blocklist sync" in described
    for alarm in on_queues:
        assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible" and alarm["Threshold"] == 0
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold" and alarm["AlarmActions"]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_function_environments_are_encrypted_with_the_stage_key(request, stage):
    synth = request.getfixturevalue(stage)
    ours = [
        f
        for stack in synth.stacks.all()
        for f in resources(synth, _name(synth, stack), "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "handler.lambda_handler"
    ]
    assert ours and all("KmsKeyArn" in f["Properties"] for f in ours)


# --- IAM ------------------------------------------------------------------------------------------------


def _dynamodb_grants(synth, name: str) -> dict[str, set[str]]:
    """Table (as its JSON reference) -> DynamoDB actions the stack's roles get on it."""
    grants: dict[str, set[str]] = {}
    for statement in _statements(synth, name):
        actions = [a for a in _list(statement["Action"]) if a.startswith("dynamodb:")]
        for resource in _list(statement["Resource"]):
            if actions:
                grants.setdefault(json.dumps(resource, sort_keys=True), set()).update(actions)
    return grants


def test_score_role_gets_exactly_the_table_calls_it_makes(dev):
    grants = _dynamodb_grants(dev, "api")
    assert sorted(grants.values(), key=sorted) == sorted(
        [
            {"dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:UpdateItem"},
            {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"},
            {"dynamodb:PutItem"},
            {"dynamodb:GetItem", "dynamodb:PutItem"},
        ],
        key=sorted,
    )
    assert not [r for r in grants if "Idempotency" in r or "/index/" in r]
    # UpdateItem (velocity at API time) reaches the velocity# items only, never an aggregate
    (update,) = [s for s in _statements(dev, "api") if "dynamodb:UpdateItem" in _list(s["Action"])]
    assert _list(update["Action"]) == ["dynamodb:UpdateItem"]
    # the prefixes of every item it writes: velocity (orders, payments) and the return lane's order records
    prefixes = [recent_orders_key(""), order_record_key(""), customer_velocity_key(""), card_velocity_key("")]
    assert update["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{prefix}*" for prefix in prefixes]}
    }


def test_stream_consumer_role_gets_exactly_the_table_calls_it_makes(dev):
    grants = _dynamodb_grants(dev, "streaming")
    assert sorted(map(sorted, grants.values())) == sorted(
        [
            ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
            ["dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"],
        ]
    )
    assert not [r for r in grants if "/index/" in r]
    # UpdateItem only on the order# records (returnguard/aws/order_records.py), never an aggregate
    (update,) = [s for s in _statements(dev, "streaming") if "dynamodb:UpdateItem" in _list(s["Action"])]
    assert _list(update["Action"]) == ["dynamodb:UpdateItem"]
    assert update["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{order_record_key('')}*"]}
    }


def test_blocklist_role_writes_items_without_scan_or_batch_and_its_network_is_scoped(prod):
    grants = _dynamodb_grants(prod, "blocklist")
    assert list(grants.values()) == [
        {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    ]
    ec2 = [s for s in _statements(prod, "blocklist") if any(a.startswith("ec2:") for a in _list(s["Action"]))]
    for statement in ec2:
        if statement["Resource"] == "*":
            ec2_actions = [a for a in _list(statement["Action"]) if a.startswith("ec2:")]
            assert all(a.startswith("ec2:Describe") for a in ec2_actions), ec2_actions
    create = next(s for s in ec2 if "ec2:CreateNetworkInterface" in _list(s["Action"]))
    text = json.dumps(create["Resource"])
    assert "subnet/subnet-aaaa1111" in text and "security-group/sg-0123456789abcdef0" in text
    delete = next(s for s in ec2 if "ec2:DeleteNetworkInterface" in _list(s["Action"]))
    assert "vpc/vpc-0123456789abcdef0" in json.dumps(delete["Condition"]["ArnEquals"]["ec2:Vpc"])


def _role_statements(synth, name: str, role_prefix: str) -> list[dict]:
    return [
        statement
        for logical_id, policy in resources(synth, name, "AWS::IAM::Policy").items()
        if logical_id.startswith(role_prefix)
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _s3_grants(statements: list[dict]) -> list[tuple[str, str]]:
    """(action, resource text) for every S3 action granted."""
    return [
        (action, json.dumps(resource))
        for s in statements
        if s["Effect"] == "Allow"
        for action in _list(s["Action"])
        if action.startswith("s3:")
        for resource in _list(s["Resource"])
    ]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_sagemaker_training_and_serving_roles_read_only_what_they_need(request, stage):
    synth = request.getfixturevalue(stage)
    (model,) = resources(synth, "ml", "AWS::SageMaker::Model").values()
    assert "ServingRole" in json.dumps(model["Properties"]["ExecutionRoleArn"])
    definition = json.dumps(resources(synth, "pipeline", "AWS::StepFunctions::StateMachine"))
    assert "TrainingRole" in definition and "ServingRole" in definition
    serving = _s3_grants(_role_statements(synth, "ml", "ServingRole"))
    training = _s3_grants(_role_statements(synth, "ml", "TrainingRole"))
    for grants, allowed in (
        (serving, ("/models/artifacts/*", "/models/data-capture/*")),
        (
            training,
            ("/processed/training-data/*", "/processed/return-training-data/*", "/models/artifacts/*"),
        ),
    ):
        for action, resource in grants:
            assert not action.startswith("s3:Delete"), (action, resource)
            if "LakeBucket" in resource and resource.count('"') > 2 and "/" in resource:
                assert any(prefix in resource for prefix in allowed), resource
            if "cdk-hnb659fds-assets" in resource:  # one asset object, never the whole asset bucket
                assert action == "s3:GetObject" and not resource.endswith('/*"]]}'), resource
    assert not [r for _, r in training if "/models/data-capture/" in r]
    assert not [r for _, r in serving if "/processed/" in r]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_sagemaker_roles_write_only_their_own_logs(request, stage):
    synth = request.getfixturevalue(stage)
    for role, kind, expected in (
        ("ServingRole", "Endpoints", f"/aws/sagemaker/Endpoints/{synth.config.prefix}-*"),
        ("TrainingRole", "TrainingJobs", "/aws/sagemaker/TrainingJobs*"),
    ):
        (logs,) = [
            s
            for s in _role_statements(synth, "ml", role)
            if any(a.startswith("logs:") for a in _list(s["Action"]))
        ]
        (resource,) = _list(logs["Resource"])
        assert json.dumps(resource).endswith(f':log-group:{expected}"]]}}'), (role, resource)
        assert f"/aws/sagemaker/{kind}" in json.dumps(resource)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_no_grant_covers_the_whole_cdk_asset_bucket(request, stage):
    synth = request.getfixturevalue(stage)
    for stack in synth.stacks.all():
        for action, resource in _s3_grants(_statements(synth, _name(synth, stack))):
            if "assets-" in resource:
                assert not resource.endswith('/*"]]}') and action == "s3:GetObject", (
                    stack.stack_name,
                    resource,
                )


def test_glue_may_only_overwrite_processed_and_never_delete_versions(dev):
    grants = _s3_grants(_statements(dev, "etl"))
    deletes = [(a, r) for a, r in grants if a.startswith("s3:Delete")]
    assert deletes and all(a == "s3:DeleteObject" and "/processed/*" in r for a, r in deletes)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_pass_role_names_the_service(request, stage):
    synth = request.getfixturevalue(stage)
    passes = [
        statement
        for stack in synth.stacks.all()
        for statement in _statements(synth, _name(synth, stack))
        if "iam:PassRole" in _list(statement["Action"])
    ]
    assert passes
    for statement in passes:
        assert statement["Condition"]["StringEquals"]["iam:PassedToService"] == "sagemaker.amazonaws.com"


def test_the_state_machine_can_only_run_this_stages_training_jobs(dev):
    (deny,) = [s for s in _statements(dev, "pipeline") if s["Effect"] == "Deny"]
    assert "sagemaker:CreateTrainingJob" in deny["Action"]
    assert "training-job/returnguard-dev-*" in json.dumps(deny["NotResource"])


# --- blocklist network path and TLS (item 12) -----------------------------------------------------------


def test_blocklist_sync_in_a_vpc_gets_endpoints_for_every_aws_api_it_calls(prod):
    endpoints = resources(prod, "blocklist", "AWS::EC2::VPCEndpoint").values()
    by_service = {
        json.dumps(e["Properties"]["ServiceName"]).split(".")[-1].strip('"]}'): e for e in endpoints
    }
    assert set(by_service) == {"s3", "dynamodb", "secretsmanager"}
    for gateway in ("s3", "dynamodb"):
        properties = by_service[gateway]["Properties"]
        assert properties["VpcEndpointType"] == "Gateway"
        assert properties["RouteTableIds"] == ["rtb-aaaa1111", "rtb-bbbb2222"]
    secrets = by_service["secretsmanager"]["Properties"]
    assert secrets["VpcEndpointType"] == "Interface" and secrets["PrivateDnsEnabled"] is True
    assert secrets["SubnetIds"] == ["subnet-aaaa1111", "subnet-bbbb2222"]
    (group,) = resources(prod, "blocklist", "AWS::EC2::SecurityGroup").values()
    (ingress,) = group["Properties"]["SecurityGroupIngress"]
    assert (ingress["FromPort"], ingress["ToPort"]) == (443, 443)
    assert ingress["SourceSecurityGroupId"] == "sg-0123456789abcdef0"


def test_blocklist_sync_ships_the_ca_bundle_it_verifies_the_database_with(prod):
    from tests.infra.conftest import PROD_CONTEXT

    bundles = list(prod.assembly_dir.glob("asset.*/rds-ca-bundle.pem"))
    assert len(bundles) == 1
    assert bundles[0].read_bytes() == Path(PROD_CONTEXT["blocklist_db_ca_bundle"]).read_bytes()
    assert (bundles[0].parent / "handler.py").is_file()


def test_blocklist_network_and_tls_settings_are_checked_at_synth(fake_model_dir, tmp_path):
    from tests.infra.conftest import PROD_CONTEXT

    context = {**PROD_CONTEXT, "model_dir": str(fake_model_dir)}
    with pytest.raises(ConfigError, match="route_table_ids"):
        load({**context, "route_table_ids": ""}, {})
    assert load({**context, "route_table_ids": "", "blocklist_vpc_endpoints": "false"}, {})
    (tmp_path / "empty.pem").write_text("")
    for bundle in (str(tmp_path / "absent.pem"), str(tmp_path / "empty.pem")):
        with pytest.raises(ConfigError, match="blocklist_db_ca_bundle.*make rds-ca"):
            load({**context, "blocklist_db_ca_bundle": bundle}, {})
