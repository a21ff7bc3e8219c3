"""What a first `cdk deploy` and `cdk destroy` would hit (issue 15), asserted on the synthesized templates."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Template

from stacks.config import ConfigError, load

PREFIX_MAX = 26  # 63 (SageMaker names) - 1 - 36 (an execution name)


def template(synth, name: str) -> Template:
    return Template.from_stack(getattr(synth.stacks, name))


def only(found: dict) -> tuple[str, dict]:
    assert len(found) == 1, list(found)
    return next(iter(found.items()))


# --- 1. the Kinesis stream ------------------------------------------------------------------------------


@pytest.mark.parametrize(("stage", "policy"), [("dev", "Delete"), ("prod", "Retain")])
def test_stream_is_deleted_with_dev_and_retained_in_prod(request, stage, policy):
    synth = request.getfixturevalue(stage)
    _, stream = only(template(synth, "streaming").find_resources("AWS::Kinesis::Stream"))
    assert stream["DeletionPolicy"] == policy
    assert stream["UpdateReplacePolicy"] == policy


# --- 3. reserved concurrency ----------------------------------------------------------------------------


def test_blocklist_sync_reserves_no_concurrency_by_default(prod):
    functions = template(prod, "blocklist").find_resources("AWS::Lambda::Function")
    sync = [f for f in functions.values() if f["Properties"].get("Handler") == "handler.lambda_handler"]
    assert len(sync) == 1
    assert "ReservedConcurrentExecutions" not in sync[0]["Properties"]


def test_blocklist_reserved_concurrency_is_a_stage_setting(fake_model_dir, tmp_path):
    from aws_cdk import App

    from stacks.blocklist import BlocklistProps, BlocklistStack
    from stacks.data import DataProps, DataStack
    from tests.infra.conftest import PROD_CONTEXT

    context = {**PROD_CONTEXT, "model_dir": str(fake_model_dir), "blocklist_reserved_concurrency": 2}
    config = load(context, {})
    assert config.blocklist.reserved_concurrency == 2
    app = App(outdir=str(tmp_path))
    data = DataStack(app, "Data", props=DataProps(config=config))
    stack = BlocklistStack(
        app,
        "Blocklist",
        props=BlocklistProps(
            config=config, key=data.key, lake=data.lake, features_table=data.tables["features"]
        ),
    )
    Template.from_stack(stack).has_resource_properties(
        "AWS::Lambda::Function", {"Handler": "handler.lambda_handler", "ReservedConcurrentExecutions": 2}
    )


# --- 5. Glue references ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_glue_crawlers_and_jobs_reference_database_and_security_configuration(request, stage):
    etl = template(request.getfixturevalue(stage), "etl")
    database, _ = only(etl.find_resources("AWS::Glue::Database"))
    security, _ = only(etl.find_resources("AWS::Glue::SecurityConfiguration"))
    crawlers = etl.find_resources("AWS::Glue::Crawler")
    assert len(crawlers) == 2
    for crawler in crawlers.values():
        assert crawler["Properties"]["DatabaseName"] == {"Ref": database}
        assert crawler["Properties"]["CrawlerSecurityConfiguration"] == {"Ref": security}
    jobs = etl.find_resources("AWS::Glue::Job")
    assert len(jobs) == 2
    for job in jobs.values():
        assert job["Properties"]["SecurityConfiguration"] == {"Ref": security}
        assert job["Properties"]["DefaultArguments"]["--database"] == {"Ref": database}


# --- 14. prefix length ----------------------------------------------------------------------------------


def test_prefix_longer_than_sagemaker_names_allow_is_refused_naming_prefix(fake_model_dir):
    longest = "r" + "x" * (PREFIX_MAX - 1)
    assert load({"prefix": longest, "model_dir": str(fake_model_dir)}, {}).prefix == longest
    # what retraining names from it stays within SageMaker's 63 characters
    assert len(f"{longest}-{'0' * 8}-{'0' * 4}-{'0' * 4}-{'0' * 4}-{'0' * 12}") == 63
    with pytest.raises(ConfigError, match=r"context 'prefix' is 27 characters, at most 26 .* 63"):
        load({"prefix": longest + "y", "model_dir": str(fake_model_dir)}, {})


@pytest.mark.parametrize("prefix", ["ab", "Returnguard", "rg-", "1rg", "rg_dev"])
def test_prefix_that_is_not_a_name_is_refused_naming_prefix(fake_model_dir, prefix):
    with pytest.raises(ConfigError, match="context 'prefix'"):
        load({"prefix": prefix, "model_dir": str(fake_model_dir)}, {})


# --- 2. the model package group can be created again after a prod destroy -------------------------------


@pytest.mark.parametrize(("stage", "policy"), [("dev", "Delete"), ("prod", "Retain")])
def test_model_package_group_name_is_new_with_every_stack_creation(request, stage, policy):
    synth = request.getfixturevalue(stage)
    _, group = only(template(synth, "ml").find_resources("AWS::SageMaker::ModelPackageGroup"))
    assert group["DeletionPolicy"] == policy
    name = group["Properties"]["ModelPackageGroupName"]
    # not a fixed string: the retained group of a destroyed prod stack must not block the next CREATE
    assert not isinstance(name, str)
    assert "AWS::StackId" in json.dumps(name)
    assert f"{synth.config.prefix}-return-abuse" in json.dumps(name)
    # the pipeline registers into that group: it imports the name, it does not spell it
    pipeline = json.dumps(template(synth, "pipeline").to_json())
    assert f'"{synth.config.prefix}-return-abuse"' not in pipeline
    assert "AWS::StackId" not in pipeline  # it would be the Pipeline stack's own id there
    assert "ModelPackageGroup" in json.dumps([v for v in _imports(pipeline)])
    assert "ModelPackageGroupName" in template(synth, "ml").find_outputs("*")


# --- 4. API Gateway's account setting -------------------------------------------------------------------


def test_no_stage_sets_the_account_cloudwatch_role(dev, prod):
    for synth in (dev, prod):
        for stack in synth.stacks.all():
            assert not Template.from_stack(stack).find_resources("AWS::ApiGateway::Account"), stack.stack_name


def test_one_account_stack_shared_by_the_stages_and_retained(dev, prod):
    assert dev.stacks.account.stack_name == prod.stacks.account.stack_name == "ReturnGuard-ApiGatewayAccount"
    account = template(dev, "account")
    assert account.to_json() == template(prod, "account").to_json()  # same template: no fight between stages
    _, setting = only(account.find_resources("AWS::ApiGateway::Account"))
    _, role = only(account.find_resources("AWS::IAM::Role"))
    # destroying either stage leaves the setting and its role, so the other stage keeps logging
    assert setting["DeletionPolicy"] == role["DeletionPolicy"] == "Retain"
    tags = {t["Key"]: t["Value"] for t in role["Properties"].get("Tags", [])}
    assert "stage" not in tags
    assert dev.stacks.account in dev.stacks.api.dependencies


def test_account_stack_can_be_left_out(fake_model_dir, tmp_path):
    from aws_cdk import App

    from stacks.wiring import build

    context = {"model_dir": str(fake_model_dir), "api_gateway_account": "false", "bedrock_enabled": False}
    stacks = build(App(outdir=str(tmp_path)), load(context, {}), nag=False)
    assert stacks.account is None


def _imports(template_text: str) -> list[str]:
    """The export names a template imports."""
    import re

    return re.findall(r'"Fn::ImportValue": "([^"]+)"', template_text)


# --- 7. log groups the services would otherwise create outside the stacks -------------------------------


def _named_log_groups(synth, stack: str) -> dict[str, dict]:
    """Log groups of a stack by their name rendered as text (tokens included), with their resource."""
    groups = template(synth, stack).find_resources("AWS::Logs::LogGroup")
    return {json.dumps(g["Properties"].get("LogGroupName")): g for g in groups.values()}


@pytest.mark.parametrize(("stage", "policy"), [("dev", "Delete"), ("prod", "Retain")])
def test_service_log_groups_are_created_in_the_stacks_with_retention_and_removal_policy(
    request, stage, policy
):
    synth = request.getfixturevalue(stage)
    retention = {"dev": 7, "prod": 90}[stage]
    expected = {
        "api": ["API-Gateway-Execution-Logs_", f"/{stage}"],
        "ml": [f"/aws/sagemaker/Endpoints/{synth.config.prefix}-scoring"],
        "etl": ["/aws-glue/jobs/", "-role/", "/output"],
    }
    for stack, fragments in expected.items():
        matching = [
            group
            for name, group in _named_log_groups(synth, stack).items()
            if all(fragment in name for fragment in fragments)
        ]
        assert len(matching) == 1, (stack, list(_named_log_groups(synth, stack)))
        (group,) = matching
        assert group["Properties"]["RetentionInDays"] == retention
        assert group["DeletionPolicy"] == policy
    etl_names = list(_named_log_groups(synth, "etl"))
    for fragments in (["-role/", "/error"], ["/aws-glue/jobs/logs-v2-"], ["/aws-glue/crawlers-role/"]):
        assert [n for n in etl_names if all(f in n for f in fragments)], fragments


@pytest.mark.parametrize(("stage", "policy"), [("dev", "Delete"), ("prod", "Retain")])
def test_every_function_and_state_machine_logs_into_a_group_of_its_own_stack(request, stage, policy):
    # Without one, Lambda creates /aws/lambda/<name> itself: never expiring, outside the stack, left by
    # `cdk destroy`. (The Ref also orders the deletes: the function goes before its group.)
    synth = request.getfixturevalue(stage)
    functions = machines = 0
    for stack in synth.stacks.all():
        resources = Template.from_stack(stack).to_json()["Resources"]
        groups = {k for k, r in resources.items() if r["Type"] == "AWS::Logs::LogGroup"}
        for logical, resource in resources.items():
            if resource["Type"] == "AWS::Lambda::Function":
                functions += 1
                target = resource["Properties"].get("LoggingConfig", {}).get("LogGroup")
                assert isinstance(target, dict) and target.get("Ref") in groups, (stack.stack_name, logical)
                assert resources[target["Ref"]]["DeletionPolicy"] == policy
            elif resource["Type"] == "AWS::StepFunctions::StateMachine":
                machines += 1
                (destination,) = resource["Properties"]["LoggingConfiguration"]["Destinations"]
                arn = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]
                assert arn["Fn::GetAtt"][0] in groups, (stack.stack_name, logical)
                assert resources[arn["Fn::GetAtt"][0]]["DeletionPolicy"] == policy
    assert functions >= 9 and machines == 2


def test_the_users_of_each_log_group_wait_for_it(dev):
    api = template(dev, "api")
    (stage_id, stage) = only(api.find_resources("AWS::ApiGateway::Stage"))
    execution_logs = [
        logical
        for logical, group in api.find_resources("AWS::Logs::LogGroup").items()
        if "API-Gateway-Execution-Logs_" in json.dumps(group["Properties"].get("LogGroupName"))
    ]
    assert set(execution_logs) <= set(stage.get("DependsOn", []))
    etl = template(dev, "etl")
    glue_logs = set(etl.find_resources("AWS::Logs::LogGroup"))
    for type_ in ("AWS::Glue::Crawler", "AWS::Glue::Job"):
        for resource in etl.find_resources(type_).values():
            assert glue_logs <= set(resource.get("DependsOn", [])), type_
    ml = template(dev, "ml")
    _, endpoint = only(ml.find_resources("AWS::SageMaker::Endpoint"))
    endpoint_logs = [
        logical
        for logical, group in ml.find_resources("AWS::Logs::LogGroup").items()
        if "/aws/sagemaker/Endpoints/" in json.dumps(group["Properties"].get("LogGroupName"))
    ]
    assert len(endpoint_logs) == 1
    assert set(endpoint_logs) <= set(endpoint.get("DependsOn", []))


# --- 13. the nightly rules job and crawlers the cost model charges for ----------------------------------


@pytest.mark.parametrize(("stage", "started"), [("dev", False), ("prod", True)])
def test_rules_job_and_crawlers_are_scheduled_nightly_and_started_in_prod_only(request, stage, started):
    etl = template(request.getfixturevalue(stage), "etl")
    jobs = etl.find_resources("AWS::Glue::Job")
    (rules,) = [logical for logical, job in jobs.items() if job["Properties"]["Name"].endswith("-rules")]
    crawlers = set(etl.find_resources("AWS::Glue::Crawler"))
    triggers = [t["Properties"] for t in etl.find_resources("AWS::Glue::Trigger").values()]
    assert len(triggers) == 2
    assert all(t["StartOnCreation"] is started for t in triggers)
    (scheduled,) = [t for t in triggers if t["Type"] == "SCHEDULED"]
    assert scheduled["Schedule"] == "cron(0 2 * * ? *)"  # daily, as docs/cost-model.md prices it
    assert scheduled["Actions"] == [{"JobName": {"Ref": rules}}]
    (after,) = [t for t in triggers if t["Type"] == "CONDITIONAL"]
    assert after["Predicate"]["Conditions"] == [
        {"JobName": {"Ref": rules}, "LogicalOperator": "EQUALS", "State": "SUCCEEDED"}
    ]
    assert {a["CrawlerName"]["Ref"] for a in after["Actions"]} == crawlers


# --- 6. dev destroy deletes what retraining created; prod keeps it ---------------------------------------


def test_dev_cleans_up_after_retraining_between_endpoint_and_group(dev):
    ml = template(dev, "ml")
    cleanup_id, cleanup = only(ml.find_resources("Custom::RetrainingCleanup"))
    group_id, _ = only(ml.find_resources("AWS::SageMaker::ModelPackageGroup"))
    _, endpoint = only(ml.find_resources("AWS::SageMaker::Endpoint"))
    # deleted after the endpoint (which depends on it), before the group (which it depends on)
    assert group_id in cleanup["DependsOn"]
    assert cleanup_id in endpoint["DependsOn"]
    properties = cleanup["Properties"]
    assert properties["Prefix"] == dev.config.prefix
    assert properties["KeepEndpoints"] == [f"{dev.config.prefix}-scoring"]
    assert "ModelPackageGroupArn" in json.dumps(properties["ModelPackageGroupName"])
    handlers = [
        f["Properties"]
        for f in ml.find_resources("AWS::Lambda::Function").values()
        if "retraining created" in f["Properties"].get("Description", "")
    ]
    assert len(handlers) == 1 and handlers[0]["Handler"] == "handler.lambda_handler"
    deletes = [
        action
        for policy in ml.find_resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
        if action.startswith("sagemaker:Delete")
    ]
    assert set(deletes) >= {
        "sagemaker:DeleteModelPackage",
        "sagemaker:DeleteModel",
        "sagemaker:DeleteEndpointConfig",
        "sagemaker:DeleteEndpoint",
    }


def test_the_cleanup_relay_function_writes_only_its_own_logs(dev):
    # not AWSLambdaBasicExecutionRole (logs:* calls on every log group), which its nag reason said it was not
    resources = template(dev, "ml").to_json()["Resources"]
    (relay,) = [
        r["Properties"]
        for logical, r in resources.items()
        if r["Type"] == "AWS::Lambda::Function" and "framework" in logical
    ]
    role = relay["Role"]["Fn::GetAtt"][0]
    assert "ManagedPolicyArns" not in resources[role]["Properties"]
    statements = [
        s
        for r in resources.values()
        if r["Type"] == "AWS::IAM::Policy" and {"Ref": role} in r["Properties"]["Roles"]
        for s in r["Properties"]["PolicyDocument"]["Statement"]
    ]
    logs = [s for s in statements if "logs:" in json.dumps(s["Action"])]
    assert logs and all(
        s["Resource"] == {"Fn::GetAtt": [relay["LoggingConfig"]["LogGroup"]["Ref"], "Arn"]} for s in logs
    )


def test_prod_keeps_what_retraining_created(prod):
    assert not template(prod, "ml").find_resources("Custom::RetrainingCleanup")


def test_dev_auto_delete_function_logs_into_a_group_of_the_stack(dev, prod):
    data = template(dev, "data")
    providers = [
        (logical, f)
        for logical, f in data.find_resources("AWS::Lambda::Function").items()
        if "AutoDeleteObjects" in logical
    ]
    assert len(providers) == 1
    _, function = providers[0]
    group_ref = function["Properties"]["LoggingConfig"]["LogGroup"]
    (group_id,) = group_ref.values()
    group = data.find_resources("AWS::Logs::LogGroup")[group_id]
    assert group["DeletionPolicy"] == "Delete" and group["Properties"]["RetentionInDays"] == 7
    assert group_id in function["DependsOn"]  # so the group is deleted after the function ran
    assert not [
        logical
        for logical in template(prod, "data").find_resources("AWS::Lambda::Function")
        if "AutoDelete" in logical
    ]  # prod's buckets are retained, never emptied


# --- teardown-check finds what bills by the stage's tags ------------------------------------------------

BILLS_WHILE_IDLE = (
    "AWS::Kinesis::Stream",
    "AWS::DynamoDB::Table",
    "AWS::S3::Bucket",
    "AWS::KMS::Key",
    "AWS::Logs::LogGroup",
    "AWS::SageMaker::Endpoint",
    "AWS::SecretsManager::Secret",
    "AWS::CloudWatch::Alarm",
    "AWS::WAFv2::WebACL",
    "AWS::EC2::VPCEndpoint",
    "AWS::Cognito::UserPool",
)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_what_bills_while_idle_carries_the_tags_teardown_check_looks_for(request, stage):
    # returnguard.aws.teardown lists what the Resource Groups Tagging API finds tagged project=returnguard,
    # stage=<stage>: an untagged billable resource left after a destroy would pass the check unseen.
    synth = request.getfixturevalue(stage)
    seen = set()
    for stack in synth.stacks.all():
        for logical, resource in Template.from_stack(stack).to_json()["Resources"].items():
            if resource["Type"] not in BILLS_WHILE_IDLE:
                continue
            seen.add(resource["Type"])
            properties = resource.get("Properties", {})
            tags = properties.get("Tags", properties.get("UserPoolTags", []))
            found = dict(tags) if isinstance(tags, dict) else {t["Key"]: t["Value"] for t in tags}
            assert {"project": "returnguard", "stage": stage}.items() <= found.items(), (
                stack.stack_name,
                logical,
            )
    assert seen >= set(BILLS_WHILE_IDLE) - {"AWS::WAFv2::WebACL", "AWS::EC2::VPCEndpoint"}
