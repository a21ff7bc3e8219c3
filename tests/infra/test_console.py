"""The Console stack: the Cognito user pool and its groups, the authorizer on every console method, and the
console function's IAM scope (decisions, audit, flagged rows, the lake's raw/labels/ prefix)."""

from __future__ import annotations

import json

import pytest

from tests.infra.test_stacks import functions, resources


def _policy_statements(synth, role: str = "ConsoleRole") -> list[dict]:
    """The statements of the policies attached to the role whose logical id starts with `role` (the
    console function's, or `SummaryRole`: the daily summary's)."""
    return [
        statement
        for policy in resources(synth, "console", "AWS::IAM::Policy").values()
        if any(r["Ref"].startswith(role) for r in policy["Properties"]["Roles"])
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _function(synth, description: str) -> dict:
    (function,) = [f for f in functions(synth, "console") if f["Description"].startswith(description)]
    return function


def _list(value) -> list:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize(("stage", "deletion"), [("dev", "Delete"), ("prod", "Retain")])
def test_the_user_pool_admits_no_self_sign_up_and_requires_mfa_and_a_strong_password(
    request, stage, deletion
):
    synth = request.getfixturevalue(stage)
    (pool,) = resources(synth, "console", "AWS::Cognito::UserPool").values()
    properties = pool["Properties"]
    assert properties["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert properties["MfaConfiguration"] == "ON"
    assert properties["EnabledMfas"] == ["SOFTWARE_TOKEN_MFA"]  # no SMS: SIM swaps
    policy = properties["Policies"]["PasswordPolicy"]
    assert policy["MinimumLength"] >= 14
    assert all(policy[f"Require{kind}"] for kind in ("Lowercase", "Uppercase", "Numbers", "Symbols"))
    assert properties["UserPoolAddOns"]["AdvancedSecurityMode"] == "ENFORCED"
    assert pool["DeletionPolicy"] == deletion  # the analysts' accounts survive a prod `cdk destroy`


def test_the_groups_are_analyst_and_lead_with_lead_first(dev):
    groups = {
        g["Properties"]["GroupName"]: g["Properties"]["Precedence"]
        for g in resources(dev, "console", "AWS::Cognito::UserPoolGroup").values()
    }
    assert set(groups) == {"analyst", "lead"}
    assert groups["lead"] < groups["analyst"]  # Cognito: the lower precedence wins


def test_the_app_client_signs_browsers_in_by_authorization_code_on_the_hosted_ui_and_nothing_else(dev):
    """A public client (no secret: PKCE instead, which the console function sends); the code flow only
    (no implicit flow, whose tokens travel in the URL); the only callback is the console's /callback."""
    (client,) = resources(dev, "console", "AWS::Cognito::UserPoolClient").values()
    properties = client["Properties"]
    assert properties.get("GenerateSecret") is False
    assert set(properties["ExplicitAuthFlows"]) == {"ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"}
    assert properties["PreventUserExistenceErrors"] == "ENABLED"
    assert (
        properties["AllowedOAuthFlows"] == ["code"] and properties["AllowedOAuthFlowsUserPoolClient"] is True
    )
    assert set(properties["AllowedOAuthScopes"]) == {"openid", "email", "profile"}
    assert properties["SupportedIdentityProviders"] == ["COGNITO"]
    (callback,) = properties["CallbackURLs"]
    (api_id,) = resources(dev, "console", "AWS::ApiGateway::RestApi")
    assert {"Ref": api_id} in callback["Fn::Join"][1] and json.dumps(callback).endswith('/dev/callback"]]}')
    (logout,) = properties["LogoutURLs"]
    assert json.dumps(logout).endswith('/dev/login"]]}')
    (domain,) = resources(dev, "console", "AWS::Cognito::UserPoolDomain").values()
    assert "returnguard-dev-console-" in json.dumps(domain["Properties"]["Domain"])  # + the account id
    variables = _function(dev, "The review console:")["Environment"]["Variables"]
    assert set(variables) >= {
        "RG_COGNITO_ISSUER",
        "RG_CONSOLE_CLIENT_ID",
        "RG_COGNITO_DOMAIN_URL",
        "RG_CONSOLE_URL",
    }
    assert "cognito-idp." in json.dumps(variables["RG_COGNITO_ISSUER"])


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_every_console_page_goes_through_the_token_checking_authorizer_but_the_sign_in_and_assets(
    request, stage
):
    synth = request.getfixturevalue(stage)
    ((authorizer_id, authorizer),) = resources(synth, "console", "AWS::ApiGateway::Authorizer").items()
    properties = authorizer["Properties"]
    assert properties["Type"] == "REQUEST" and properties["AuthorizerResultTtlInSeconds"] == 0
    checker = _function(synth, "The review console's authorizer")
    assert set(checker["Environment"]["Variables"]) >= {"RG_COGNITO_ISSUER", "RG_CONSOLE_CLIENT_ID"}
    page = _function(synth, "The review console:")["Environment"]["Variables"]
    assert checker["Environment"]["Variables"]["RG_CONSOLE_CLIENT_ID"] == page["RG_CONSOLE_CLIENT_ID"]
    paths = {
        rid: r["Properties"]["PathPart"]
        for rid, r in resources(synth, "console", "AWS::ApiGateway::Resource").items()
    }
    public, signed_in = set(), set()
    for method in resources(synth, "console", "AWS::ApiGateway::Method").values():
        m = method["Properties"]
        where = paths.get(m["ResourceId"].get("Ref", ""), "/")
        if m["AuthorizationType"] == "NONE":
            public.add((m["HttpMethod"], where))
        else:
            assert (m["AuthorizationType"], m["AuthorizerId"]) == ("CUSTOM", {"Ref": authorizer_id})
            signed_in.add((m["HttpMethod"], where))
    assert signed_in == {("ANY", "/"), ("ANY", "{proxy+}")}
    assert public == {("GET", "login"), ("GET", "callback"), ("GET", "health"), ("GET", "{asset}")}
    (refused,) = resources(synth, "console", "AWS::ApiGateway::GatewayResponse").values()
    assert refused["Properties"]["ResponseType"] == "UNAUTHORIZED"
    assert refused["Properties"]["StatusCode"] == "302"
    assert (
        refused["Properties"]["ResponseParameters"]["gatewayresponse.header.Location"] == f"'/{stage}/login'"
    )


def test_the_console_function_may_touch_only_the_review_data(dev):
    function = _function(dev, "The review console:")
    assert set(function["Environment"]["Variables"]) >= {
        "RG_DECISIONS_TABLE",
        "RG_AUDIT_TABLE",
        "RG_FLAGGED_TABLE",
        "RG_LAKE_BUCKET",
    }
    grants: dict[str, set[str]] = {}
    conditions: dict[str, dict] = {}
    for statement in _policy_statements(dev):
        for action in _list(statement["Action"]):
            service = action.split(":")[0]
            if service in ("dynamodb", "s3"):
                for resource in _list(statement["Resource"]):
                    target = json.dumps(resource, sort_keys=True)
                    grants.setdefault(action, set()).add(target)
                    if "Condition" in statement:
                        conditions[action] = statement["Condition"]
    # no wildcard actions on the tables, nothing on another table
    assert set(a for a in grants if a.startswith("dynamodb:")) == {
        "dynamodb:Scan",
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
        "dynamodb:PutItem",
    }
    tables = {t for targets in (v for k, v in grants.items() if k.startswith("dynamodb:")) for t in targets}
    assert all(any(name in t for name in ("Decisions", "Audit", "Flagged")) for t in tables), tables
    assert not any(t for t in tables if "Features" in t or "Idempotency" in t or "Explanations" in t)
    assert all("Audit" in t for t in grants["dynamodb:PutItem"])  # it appends to the audit trail only
    # the queue reads the decisions' sparse by_review index: no Scan of the decisions, only of flagged rows
    assert all("Flagged" in t for t in grants["dynamodb:Scan"]), grants["dynamodb:Scan"]
    assert any("Decisions" in t and "/index/by_review" in t for t in grants["dynamodb:Query"])
    assert not any("Audit" in t for t in grants["dynamodb:UpdateItem"])  # and never rewrites it
    attributes = conditions["dynamodb:UpdateItem"]["ForAllValues:StringEquals"]["dynamodb:Attributes"]
    assert set(attributes) >= {"review_status", "reviewed_by", "reviewed_at", "review_note"}
    assert not {"risk_score", "recommended_action", "request"} & set(attributes)
    # S3: objects under raw/labels/ only, and no read
    s3_actions = {a for a in grants if a.startswith("s3:")} - {"s3:GetObject"}
    assert s3_actions and all(a.startswith(("s3:PutObject", "s3:Abort")) for a in s3_actions), s3_actions
    for action in s3_actions:
        assert all("/raw/labels/*" in t for t in grants[action]), grants[action]
    # and it reads one object: the latest reason-clusters report
    assert [json.loads(t)["Fn::Join"][1][-1] for t in grants["s3:GetObject"]] == [
        "/reports/reason-clusters/latest.html"
    ]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_console_api_logs_access_with_the_user_and_keeps_logs_for_the_stage_retention(request, stage):
    synth = request.getfixturevalue(stage)
    (api_stage,) = resources(synth, "console", "AWS::ApiGateway::Stage").values()
    log_format = api_stage["Properties"]["AccessLogSetting"]["Format"]
    assert "$context.authorizer.user" in log_format and "$context.authorizer.principalId" in log_format
    assert api_stage["Properties"]["TracingEnabled"] is True
    groups = resources(synth, "console", "AWS::Logs::LogGroup").values()
    assert len(groups) == 6  # the console, authorizer, summary and clusters functions', access, execution
    assert all(g["Properties"]["RetentionInDays"] >= synth.config.log_retention_days for g in groups)
    expected = "Retain" if synth.config.retain_data else "Delete"
    assert all(g["DeletionPolicy"] == expected for g in groups)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_similar_cases_have_a_512_dimension_cosine_index_and_only_its_and_titans_permissions(request, stage):
    synth = request.getfixturevalue(stage)
    ((index_id, index),) = [
        (i, r)
        for i, r in resources(synth, "console", "AWS::S3Vectors::Index").items()
        if r["Properties"]["IndexName"] == "cases"
    ]
    assert (index["Properties"]["Dimension"], index["Properties"]["DistanceMetric"]) == (512, "cosine")
    (bucket,) = resources(synth, "console", "AWS::S3Vectors::VectorBucket").values()
    assert bucket["Properties"]["EncryptionConfiguration"]["SseType"] == "AES256"
    variables = _function(synth, "The review console:")["Environment"]["Variables"]
    assert variables["RG_VECTOR_BUCKET"] == bucket["Properties"]["VectorBucketName"]
    assert variables["RG_VECTOR_INDEX"] == index["Properties"]["IndexName"]
    vector_statements = [
        s for s in _policy_statements(synth) if any(a.startswith("s3vectors:") for a in _list(s["Action"]))
    ]
    (statement,) = vector_statements
    assert set(_list(statement["Action"])) == {
        "s3vectors:PutVectors",
        "s3vectors:QueryVectors",
        "s3vectors:GetVectors",
    }
    assert statement["Resource"] == {"Fn::GetAtt": [index_id, "IndexArn"]}
    bedrock = [
        s for s in _policy_statements(synth) if any(a.startswith("bedrock:") for a in _list(s["Action"]))
    ]
    (statement,) = [s for s in bedrock if "titan" in json.dumps(s["Resource"])]
    assert _list(statement["Action"]) == ["bedrock:InvokeModel"]
    assert "foundation-model/amazon.titan-embed-text-v2:0" in json.dumps(statement["Resource"])


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_summary_page_may_call_the_stages_bedrock_model_and_only_where_there_is_one(request, stage):
    """The lead's /summary page is rewritten by the daily e-mail's model: the same id in both functions,
    and the console role may invoke it (prod's context names Nova Lite; dev has no model)."""
    synth = request.getfixturevalue(stage)
    page = _function(synth, "The review console:")["Environment"]["Variables"]["RG_BEDROCK_MODEL_ID"]
    mail = _function(synth, "The leads' daily review summary")["Environment"]["Variables"]
    assert page == mail["RG_BEDROCK_MODEL_ID"]
    converse = [
        s
        for s in _policy_statements(synth)
        if "bedrock:InvokeModel" in _list(s["Action"]) and "nova-lite" in json.dumps(s["Resource"])
    ]
    if stage == "dev":
        assert page == "" and converse == []
    else:
        assert "amazon.nova-lite-v1:0" in json.dumps(page)
        (statement,) = converse
        assert "inference-profile" in json.dumps(statement["Resource"])


def test_the_decisions_table_has_a_sparse_review_index_keyed_by_review_status_and_time(dev):
    """Sparse: its key, review_queue, is written only on a decision that needs a person (DecisionStore)."""
    tables = resources(dev, "data", "AWS::DynamoDB::Table").values()
    (decisions,) = [
        t
        for t in tables
        if t["Properties"]["KeySchema"] == [{"AttributeName": "decision_id", "KeyType": "HASH"}]
    ]
    indexes = {g["IndexName"]: g for g in decisions["Properties"]["GlobalSecondaryIndexes"]}
    assert indexes["by_review"]["KeySchema"] == [
        {"AttributeName": "review_queue", "KeyType": "HASH"},
        {"AttributeName": "created_at", "KeyType": "RANGE"},
    ]
    assert indexes["by_review"]["Projection"] == {"ProjectionType": "ALL"}  # a queue row needs the request


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_daily_summary_runs_on_a_schedule_and_may_read_only_the_review_index_and_publish(request, stage):
    synth = request.getfixturevalue(stage)
    (rule,) = [
        r
        for r in resources(synth, "console", "AWS::Events::Rule").values()
        if r["Properties"]["Description"] == "The leads' daily review summary"
    ]
    assert rule["Properties"]["ScheduleExpression"] == "cron(30 3 * * ? *)"
    (target,) = rule["Properties"]["Targets"]
    assert "DeadLetterConfig" in target and target["RetryPolicy"]["MaximumRetryAttempts"] == 2
    (topic_id, topic) = next(iter(resources(synth, "console", "AWS::SNS::Topic").items()))
    assert "KmsMasterKeyId" in topic["Properties"]
    variables = _function(synth, "The leads' daily review summary")["Environment"]["Variables"]
    assert variables["RG_SUMMARY_TOPIC_ARN"] == {"Ref": topic_id}
    statements = _policy_statements(synth, "SummaryRole")
    actions = {a for s in statements for a in _list(s["Action"])}
    assert {"dynamodb:Query", "dynamodb:Scan", "sns:Publish"} <= actions
    assert not {"dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:GetItem"} & actions
    for statement in statements:
        targets = json.dumps(statement["Resource"])
        if "dynamodb:Query" in _list(statement["Action"]):
            assert "/index/by_review" in targets and "by_customer" not in targets
        if "dynamodb:Scan" in _list(statement["Action"]):
            assert "Flagged" in targets and "Decisions" not in targets
    # Bedrock only where the stage has a model (prod's context names Nova Lite; dev turns it off)
    model = variables["RG_BEDROCK_MODEL_ID"]
    assert model == "" if stage == "dev" else "amazon.nova-lite-v1:0" in json.dumps(model)  # profile.model
    assert ("bedrock:InvokeModel" in actions) == (stage == "prod")


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_reason_clusters_run_daily_over_the_lakes_returns_with_titan_and_their_own_index(request, stage):
    synth = request.getfixturevalue(stage)
    rules = {
        r["Properties"]["Description"]: r for r in resources(synth, "console", "AWS::Events::Rule").values()
    }
    rule = rules["The return reason clusters"]
    assert rule["Properties"]["ScheduleExpression"] == "cron(0 3 * * ? *)"
    (target,) = rule["Properties"]["Targets"]
    assert "DeadLetterConfig" in target and target["RetryPolicy"]["MaximumRetryAttempts"] == 2
    ((index_id, index),) = [
        (i, r)
        for i, r in resources(synth, "console", "AWS::S3Vectors::Index").items()
        if r["Properties"]["IndexName"] == "reasons"
    ]
    assert (index["Properties"]["Dimension"], index["Properties"]["DistanceMetric"]) == (512, "cosine")
    function = _function(synth, "The return reason clusters")
    assert function["Environment"]["Variables"]["RG_REASONS_INDEX"] == "reasons"
    assert any("SdkForPandasLayer" in json.dumps(layer) for layer in function["Layers"])  # pyarrow, NumPy
    statements = _policy_statements(synth, "ClustersRole")
    by_action: dict[str, list[str]] = {}
    for statement in statements:
        for action in _list(statement["Action"]):
            by_action.setdefault(action, []).extend(json.dumps(r) for r in _list(statement["Resource"]))
    vectors = {a for a in by_action if a.startswith("s3vectors:")}
    assert vectors == {
        f"s3vectors:{a}Vectors" for a in ("Get", "Put", "List", "Delete")
    }  # List, Delete: expiry
    for action in vectors:
        assert set(by_action[action]) == {json.dumps({"Fn::GetAtt": [index_id, "IndexArn"]})}
    assert all("titan-embed-text-v2" in r for r in by_action["bedrock:InvokeModel"])
    reads = [
        r
        for a, rs in by_action.items()
        if a.startswith(("s3:Get", "s3:List")) and a != "s3:ListBucket"
        for r in rs
    ]
    assert reads and all("/raw/returns/*" in r for r in reads)
    writes = [r for a, rs in by_action.items() if a.startswith("s3:PutObject") for r in rs]
    assert writes and all("/reports/reason-clusters/*" in r for r in writes)
    (listing,) = [s for s in statements if _list(s["Action"]) == ["s3:ListBucket"]]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["raw/returns/*"]}}
    assert not any(a.startswith(("dynamodb:", "s3:Delete")) for a in by_action)
