"""Security properties of the synthesized templates: encrypted logs, log levels, WAF keys and logging,
least-privilege IAM, the blocklist function's network path."""

from __future__ import annotations

import json

import pytest

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
    for name in ("data", "streaming", "etl", "ml", "api", "pipeline", "monitoring", "blocklist"):
        if getattr(synth.stacks, name) is stack:
            return name
    raise AssertionError(stack.stack_name)
