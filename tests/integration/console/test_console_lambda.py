"""The console's Lambda function behind API Gateway: the REQUEST authorizer's context (the person its
verified Cognito token names) decides who the person is and what they may see, against moto's tables and
bucket; the sign-in (hosted UI, authorization code with PKCE) against a local stand-in of the user pool.

The events are what API Gateway's REST proxy integration sends after the console's authorizer
(lambdas/console_authorizer/handler.py) let a request through (`requestContext.authorizer`: `user`,
`sub`, `groups`); the pages and verdicts are the same code as the local console's
(returnguard/aws/console_app.py).
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import re
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import boto3
import pyarrow.parquet as pq
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from local.api_server import LambdaContext
from local.stack import create_table
from returnguard.aws import reviews
from returnguard.aws.console_app import role_of
from returnguard.aws.console_sign_in import groups_of
from returnguard.aws.decisions import DecisionStore
from returnguard.aws.reason_clusters import reason_key
from returnguard.aws.similar_cases import DIMENSIONS, VectorSimilarCases
from returnguard.tables import AUDIT, DECISIONS, FLAGGED
from tests.cognito_pool import Pool
from tests.cognito_pool import serve as serve_pool
from tests.integration.console.conftest import save_decision
from tests.integration.console.test_similar_cases_aws import FakeEmbedder

ROOT = Path(__file__).resolve().parents[3]
LAKE = "lake"
TOKEN = "Bearer eyJ.fake.token"  # the authorizer checked it; the function only derives the CSRF token
CONSOLE_URL = "https://console.example/dev"  # under the stage path, as API Gateway serves it


VECTORS = {"RG_VECTOR_BUCKET": "case-vectors", "RG_VECTOR_INDEX": "cases"}
BEDROCK = {"RG_BEDROCK_MODEL_ID": "apac.amazon.nova-lite-v1:0"}


@pytest.fixture(scope="module")
def user_pool() -> Iterator[tuple[Pool, str]]:
    """A stand-in of the console's user pool: its key set and token endpoint on 127.0.0.1."""
    pool = Pool()
    with serve_pool(pool) as url:
        yield pool, url


@pytest.fixture(params=[{}], ids=["plain"])
def aws(request, monkeypatch: pytest.MonkeyPatch, user_pool):
    """The handler loaded against moto; `request.param`: more of its environment (VECTORS, BEDROCK)."""
    pool, pool_url = user_pool
    for name, value in request.param.items():
        monkeypatch.setenv(name, value)
    for name, value in {
        "RG_DECISIONS_TABLE": "decisions",
        "RG_AUDIT_TABLE": "audit",
        "RG_FLAGGED_TABLE": "flagged",
        "RG_LAKE_BUCKET": LAKE,
        "AWS_DEFAULT_REGION": "us-east-1",
        "RG_COGNITO_ISSUER": pool.issuer,
        "RG_CONSOLE_CLIENT_ID": pool.client_id,
        "RG_COGNITO_DOMAIN_URL": pool_url,  # the hosted UI's token endpoint is <domain>/oauth2/token
        "RG_CONSOLE_URL": CONSOLE_URL,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        for definition, name in ((DECISIONS, "decisions"), (AUDIT, "audit"), (FLAGGED, "flagged")):
            create_table(dynamodb, definition, name)
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=LAKE)
        if "RG_VECTOR_BUCKET" in request.param:
            vectors = boto3.client("s3vectors", region_name="us-east-1")
            vectors.create_vector_bucket(vectorBucketName="case-vectors")
            vectors.create_index(
                vectorBucketName="case-vectors",
                indexName="cases",
                dataType="float32",
                dimension=DIMENSIONS,
                distanceMetric="cosine",
            )
        path = ROOT / "lambdas" / "console" / "handler.py"
        spec = importlib.util.spec_from_file_location("console_handler_under_test", path)
        assert spec and spec.loader
        handler = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = handler
        spec.loader.exec_module(handler)
        seeded = save_decision(DecisionStore(dynamodb, "decisions", "audit"), "O-LAMBDA-1", customer_id="C7")
        yield handler, dynamodb, s3, seeded
        sys.modules.pop(spec.name, None)


def event(
    method: str,
    path: str,
    *,
    user: str | None = "asha",
    groups: Any = "analyst",
    form: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    context = {} if user is None else {"user": user, "sub": f"sub-{user}", "principalId": f"sub-{user}"}
    if user is not None and groups is not None:
        context["groups"] = groups if isinstance(groups, str) else ",".join(groups)
    headers = {"Authorization": TOKEN}
    if form is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    return {
        "httpMethod": method,
        "path": path,
        "resource": "/{proxy+}",
        "headers": headers,
        "queryStringParameters": query,
        "body": urlencode(form) if form is not None else None,
        "isBase64Encoded": False,
        "requestContext": {"authorizer": context, "path": f"/dev{path}"} if user is not None else {},
    }


def call(handler, *args, **kwargs) -> dict[str, Any]:
    return handler.lambda_handler(event(*args, **kwargs), LambdaContext())


def test_the_daily_summary_is_for_leads_only(aws):
    handler, *_ = aws
    analyst = call(handler, "GET", "/summary", groups="analyst")
    assert analyst["statusCode"] == 403
    assert analyst["headers"]["X-Error-Code"] == "forbidden"
    lead = call(handler, "GET", "/summary", user="ravi", groups="analyst,lead")
    assert lead["statusCode"] == 200
    assert "Daily summary" in lead["body"]
    assert lead["headers"]["Content-Security-Policy"].startswith("default-src 'none'")


def _converse(text: str) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 300, "outputTokens": 20, "totalTokens": 320},
        "metrics": {"latencyMs": 800},
    }


@pytest.mark.parametrize("aws", [BEDROCK], ids=["bedrock"], indirect=True)
def test_a_leads_summary_page_is_written_by_bedrock_with_the_template_when_the_answer_fails_its_check(aws):
    """The page takes the daily e-mail's code path (SummaryWriter: Converse, checked): Bedrock's prose
    above the facts, escaped; a number Bedrock made up sends the template, and the page says so."""
    handler, *_ = aws
    written = "1 decision needed a person today and it is still waiting."
    with Stubber(handler.writer._client) as stub:
        stub.add_response("converse", _converse(written))
        stub.add_response("converse", _converse("42 cases wait."))
        page = call(handler, "GET", "/summary", user="ravi", groups="lead")
        refused = call(handler, "GET", "/summary", user="ravi", groups="lead")
        stub.assert_no_pending_responses()
    assert page["statusCode"] == 200
    prose = re.search(r'<section id="written-summary".*?</section>', page["body"]).group(0)  # type: ignore[union-attr]
    assert f"<p>{written}</p>" in prose
    assert "Written by bedrock" in prose
    assert "42" not in refused["body"]
    assert "Written by template (invented_number)" in refused["body"]
    assert "- waiting for a person: 1" in refused["body"]  # the template's own text, as prose


@pytest.mark.parametrize("groups", [None, "", "viewers", "[admins]"])
def test_a_person_in_neither_group_sees_nothing(aws, groups):
    handler, *_ = aws
    answer = call(handler, "GET", "/", groups=groups)
    assert answer["statusCode"] == 403
    assert "O-LAMBDA-1" not in answer["body"]


def test_no_authorizer_context_is_401_and_health_and_assets_need_none(aws):
    handler, *_ = aws
    assert call(handler, "GET", "/", user=None)["statusCode"] == 401
    assert call(handler, "GET", "/health", user=None)["statusCode"] == 200
    css = call(handler, "GET", "/static/console.css", user=None)
    assert css["statusCode"] == 200 and css["headers"]["Content-Type"].startswith("text/css")


@pytest.mark.parametrize("groups", ["lead", "[analyst lead]", ["analyst", "lead"]])
def test_lead_wins_over_analyst_whatever_shape_the_groups_claim_has(aws, groups):
    handler, *_ = aws
    assert role_of(groups_of(groups)) == "lead"
    assert call(handler, "GET", "/summary", groups=groups)["statusCode"] == 200


def test_an_analysts_verdict_names_the_analyst_and_becomes_a_label_in_the_lake(aws):
    handler, dynamodb, s3, seeded = aws
    queue = call(handler, "GET", "/", groups="analyst")
    assert queue["statusCode"] == 200 and seeded.order_id in queue["body"]
    page = call(handler, "GET", f"/cases/{seeded.decision_id}")
    assert page["statusCode"] == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', page["body"]).group(1)  # type: ignore[union-attr]

    forged = call(
        handler, "POST", f"/cases/{seeded.decision_id}/verdict", form={"csrf": "x", "verdict": "legitimate"}
    )
    assert forged["statusCode"] == 403 and forged["headers"]["X-Error-Code"] == "csrf"

    answer = call(
        handler,
        "POST",
        f"/cases/{seeded.decision_id}/verdict",
        form={"csrf": csrf, "verdict": "confirmed_abuse", "note": "box was empty"},
    )
    assert answer["statusCode"] == 303, answer["body"][:300]
    item = dynamodb.get_item(TableName="decisions", Key={"decision_id": {"S": seeded.decision_id}})["Item"]
    assert (item["review_status"]["S"], item["reviewed_by"]["S"]) == ("confirmed_abuse", "asha")
    trail = dynamodb.query(
        TableName="audit",
        KeyConditionExpression="decision_id = :d",
        ExpressionAttributeValues={":d": {"S": seeded.decision_id}},
    )["Items"]
    (verdict,) = [i for i in trail if "verdict" in i]
    assert (verdict["reviewer"]["S"], verdict["role"]["S"]) == ("asha", "analyst")
    (key,) = [o["Key"] for o in s3.list_objects_v2(Bucket=LAKE, Prefix="raw/labels/")["Contents"]]
    assert key.endswith(f"verdict-{seeded.decision_id}.parquet")
    row = pq.read_table(io.BytesIO(s3.get_object(Bucket=LAKE, Key=key)["Body"].read())).to_pylist()[0]
    assert (row["order_id"], row["is_abuse"]) == (seeded.order_id, 1)

    again = call(
        handler,
        "POST",
        f"/cases/{seeded.decision_id}/verdict",
        user="ravi",
        groups="lead",
        form={"csrf": csrf, "verdict": "legitimate"},
    )
    assert again["statusCode"] == 409 and again["headers"]["X-Error-Code"] == "already_decided"


@pytest.mark.parametrize("aws", [VECTORS], ids=["vectors"], indirect=True)
def test_with_an_index_configured_a_verdict_indexes_the_decided_case(aws):
    handler, _, _, seeded = aws
    assert isinstance(handler.app.similar, VectorSimilarCases)
    handler.similar._embedder = FakeEmbedder(
        DIMENSIONS
    )  # Bedrock is not in moto: the request is tested apart
    page = call(handler, "GET", f"/cases/{seeded.decision_id}")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page["body"]).group(1)  # type: ignore[union-attr]
    answer = call(
        handler,
        "POST",
        f"/cases/{seeded.decision_id}/verdict",
        form={"csrf": csrf, "verdict": "legitimate"},
    )
    assert answer["statusCode"] == 303
    vectors = boto3.client("s3vectors", region_name="us-east-1")
    (stored,) = vectors.get_vectors(
        vectorBucketName="case-vectors", indexName="cases", keys=[seeded.decision_id], returnMetadata=True
    )["vectors"]
    assert stored["metadata"]["verdict"] == "legitimate"


def test_the_queue_reads_the_sparse_review_index_and_never_scans_the_decisions(aws):
    """Only a decision that needs a person carries review_queue (the by_review index's key); a queue page
    queries that index per review status, so an approved order is never read, and a verdict moves its
    case to the verdict's partition."""
    handler, dynamodb, _, seeded = aws
    store = DecisionStore(dynamodb, "decisions", "audit")
    approved = save_decision(store, "O-LAMBDA-OK", action="approve", level="low", score=0.05)
    tables_scanned: list[str] = []
    handler.store._client.meta.events.register(
        "provide-client-params.dynamodb.Scan", lambda params, **_: tables_scanned.append(params["TableName"])
    )

    def queue_key(decision_id: str):
        item = dynamodb.get_item(TableName="decisions", Key={"decision_id": {"S": decision_id}})["Item"]
        return item.get("review_queue", {}).get("S")

    assert (queue_key(seeded.decision_id), queue_key(approved.decision_id)) == ("open", None)
    queue = call(handler, "GET", "/", query={"status": "all"})
    assert queue["statusCode"] == 200
    assert seeded.order_id in queue["body"] and approved.order_id not in queue["body"]
    case = call(handler, "GET", f"/cases/{seeded.decision_id}")
    csrf = re.search(r'name="csrf" value="([^"]+)"', case["body"]).group(1)  # type: ignore[union-attr]
    form = {"csrf": csrf, "verdict": "legitimate"}
    assert call(handler, "POST", f"/cases/{seeded.decision_id}/verdict", form=form)["statusCode"] == 303
    assert queue_key(seeded.decision_id) == "legitimate"
    assert seeded.order_id not in call(handler, "GET", "/")["body"]  # open cases only
    assert seeded.order_id in call(handler, "GET", "/", query={"status": "legitimate"})["body"]
    assert "decisions" not in tables_scanned and "flagged" in tables_scanned


def test_the_daily_summary_function_sends_the_leads_the_review_cases_of_the_day(aws, monkeypatch):
    """The scheduled function reads the review index (never a Scan of the decisions), lets Bedrock
    (Stubber: moto has no Converse) rewrite the template and publishes to the leads' topic."""
    _, dynamodb, _, seeded = aws
    save_decision(DecisionStore(dynamodb, "decisions", "audit"), "O-SUM-OK", action="approve", level="low")
    sns = boto3.client("sns", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    topic = sns.create_topic(Name="lead-summaries")["TopicArn"]
    inbox = sqs.create_queue(QueueName="lead-inbox")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn, Attributes={"RawMessageDelivery": "true"}
    )
    monkeypatch.setenv("RG_SUMMARY_TOPIC_ARN", topic)
    monkeypatch.setenv("RG_BEDROCK_MODEL_ID", "apac.amazon.nova-lite-v1:0")
    path = ROOT / "lambdas" / "console_summary" / "handler.py"
    spec = importlib.util.spec_from_file_location("console_summary_under_test", path)
    assert spec and spec.loader
    summary = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(summary)
    scanned: list[str] = []
    summary.store._client.meta.events.register(
        "provide-client-params.dynamodb.Scan", lambda params, **_: scanned.append(params["TableName"])
    )
    bedrock = summary.writer._client
    written = "1 decision needed a person today and it is still waiting."
    with Stubber(bedrock) as stub:
        stub.add_response(
            "converse",
            {
                "output": {"message": {"role": "assistant", "content": [{"text": written}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 300, "outputTokens": 20, "totalTokens": 320},
                "metrics": {"latencyMs": 800},
            },
        )
        answer = summary.lambda_handler(
            {"source": "aws.events", "detail-type": "Scheduled Event"}, LambdaContext()
        )
    assert answer["source"] == "bedrock"
    (message,) = sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10)["Messages"]
    assert message["Body"].startswith(written) and "written by bedrock" in message["Body"]
    assert "decisions" not in scanned

    with Stubber(bedrock) as stub:  # an answer with a number not among the facts: the template goes out
        stub.add_response(
            "converse",
            {
                "output": {"message": {"role": "assistant", "content": [{"text": "42 cases wait."}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 300, "outputTokens": 5, "totalTokens": 305},
                "metrics": {"latencyMs": 800},
            },
        )
        assert summary.lambda_handler({}, LambdaContext())["source"] == "template (invented_number)"
    (message,) = sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10)["Messages"]
    assert "- decisions that needed a person: 1" in message["Body"]  # the approved order is not read
    assert "- waiting for a person: 1" in message["Body"] and seeded.order_id not in message["Body"]


def test_decisions_stored_before_the_review_index_are_backfilled_into_the_queue(aws, capsys):
    """A decision written before review_queue existed is not in the index; the one-off backfill adds the
    ones that need a person (with their review status), leaves the others out, and is safe to repeat."""
    handler, dynamodb, _, seeded = aws
    store = DecisionStore(dynamodb, "decisions", "audit")
    decided = save_decision(store, "O-OLD-DECIDED")
    approved = save_decision(store, "O-OLD-OK", action="approve", level="low")
    dynamodb.update_item(
        TableName="decisions",
        Key={"decision_id": {"S": decided.decision_id}},
        UpdateExpression="SET review_status = :s",
        ExpressionAttributeValues={":s": {"S": "legitimate"}},
    )
    for old in (seeded, decided, approved):  # as the score function wrote them before the index
        dynamodb.update_item(
            TableName="decisions",
            Key={"decision_id": {"S": old.decision_id}},
            UpdateExpression="REMOVE review_queue",
        )
    assert seeded.order_id not in call(handler, "GET", "/")["body"]  # lost to the queue until backfilled

    assert reviews.main(["backfill-queue", "--table", "decisions", "--region", "us-east-1"]) == 0
    assert capsys.readouterr().out.startswith("2 waiting or reviewed decisions added")
    assert reviews.backfill_review_queue(dynamodb, "decisions") == 0  # a second run finds nothing to add

    def queue_key(decision_id: str):
        item = dynamodb.get_item(TableName="decisions", Key={"decision_id": {"S": decision_id}})["Item"]
        return item.get("review_queue", {}).get("S")

    assert [queue_key(d.decision_id) for d in (seeded, decided, approved)] == ["open", "legitimate", None]
    assert seeded.order_id in call(handler, "GET", "/")["body"]


def _load(name: str, folder: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "lambdas" / folder / "handler.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cookie(set_cookies: list[str], name: str) -> str:
    (value,) = [c.split(";")[0].split("=", 1)[1] for c in set_cookies if c.startswith(f"{name}=")]
    return value


def test_an_analyst_signs_in_through_the_hosted_ui_and_her_verdict_names_her_tokens_subject(aws, user_pool):
    """The whole path: /login sends the browser to the hosted UI with a PKCE challenge; the pool issues a
    code bound to it; /callback redeems the code with this browser's verifier and keeps the ID token in
    an HttpOnly cookie; the authorizer verifies that cookie's token (signature against the pool's key
    set) and names the person; the verdict records the token's subject next to the user name."""
    handler, dynamodb, _, seeded = aws
    pool, _ = user_pool
    authorizer = _load("console_authorizer_under_test", "console_authorizer")

    def request(method: str, path: str, headers: dict[str, str], **extra: Any) -> dict[str, Any]:
        answer = {
            "httpMethod": method,
            "path": path,
            "headers": headers,
            "requestContext": {"path": f"/dev{path}"},
        }
        return handler.lambda_handler({**answer, **extra}, LambdaContext())

    # Given: the browser asks for the console's sign-in
    login = request("GET", "/login", {})
    assert login["statusCode"] == 302
    authorize = urlparse(login["headers"]["Location"])
    query = {k: v[0] for k, v in parse_qs(authorize.query).items()}
    assert authorize.path == "/oauth2/authorize" and query["code_challenge_method"] == "S256"
    assert query["redirect_uri"] == f"{CONSOLE_URL}/callback" and query["client_id"] == pool.client_id
    (login_cookie,) = login["multiValueHeaders"]["Set-Cookie"]
    assert "HttpOnly" in login_cookie and "Secure" in login_cookie
    browser = f"__Host-rg_login={_cookie([login_cookie], '__Host-rg_login')}"

    # When: the hosted UI signs asha in and sends her back with a code
    code = pool.issue_code("asha", ("analyst",), query["code_challenge"], query["redirect_uri"])
    wrong_state = request(
        "GET", "/callback", {"Cookie": browser}, queryStringParameters={"code": code, "state": "x"}
    )
    assert (wrong_state["statusCode"], wrong_state["headers"]["X-Error-Code"]) == (401, "wrong_state")
    callback = request(
        "GET", "/callback", {"Cookie": browser}, queryStringParameters={"code": code, "state": query["state"]}
    )
    assert callback["statusCode"] == 303 and callback["headers"]["Location"] == "/dev/"
    set_cookies = callback["multiValueHeaders"]["Set-Cookie"]
    session = _cookie(set_cookies, "__Host-rg_console")
    (session_cookie,) = [c for c in set_cookies if c.startswith("__Host-rg_console=")]
    assert all(flag in session_cookie for flag in ("HttpOnly", "Secure", "SameSite=Lax", "Path=/"))
    replayed = request(
        "GET", "/callback", {"Cookie": browser}, queryStringParameters={"code": code, "state": query["state"]}
    )
    assert replayed["statusCode"] == 401  # a code is good once

    # Then: the authorizer lets her cookie through as asha, and refuses a forged one
    headers = {"Cookie": f"__Host-rg_console={session}"}
    allowed = authorizer.lambda_handler(
        {"type": "REQUEST", "methodArn": "arn:aws:execute-api:us-east-1:1:api/dev/GET/", "headers": headers},
        LambdaContext(),
    )
    sub = pool.claims("asha")["sub"]
    assert allowed["context"] == {"user": "asha", "sub": sub, "groups": "analyst"}
    assert allowed["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    forged = _tampered_groups(session)
    for refused in ({"Cookie": f"__Host-rg_console={forged}"}, {}):
        with pytest.raises(Exception, match="^Unauthorized$"):
            authorizer.lambda_handler({"methodArn": "arn", "headers": refused}, LambdaContext())

    # and her verdict, through the console function with that context, names her subject
    context = {"authorizer": {**allowed["context"], "principalId": allowed["principalId"]}}
    case = request("GET", f"/cases/{seeded.decision_id}", headers, requestContext=context)
    assert case["statusCode"] == 200 and 'href="/dev/static/console.css"' in case["body"]
    csrf = re.search(r'name="csrf" value="([^"]+)"', case["body"]).group(1)  # type: ignore[union-attr]
    form = {"csrf": csrf, "verdict": "confirmed_abuse", "note": "empty box"}
    body = {"body": urlencode(form), "requestContext": context}
    posted = request(
        "POST",
        f"/cases/{seeded.decision_id}/verdict",
        {**headers, "Content-Type": "application/x-www-form-urlencoded"},
        **body,
    )
    assert posted["statusCode"] == 303 and posted["headers"]["Location"].startswith("/dev/cases/")
    item = dynamodb.get_item(TableName="decisions", Key={"decision_id": {"S": seeded.decision_id}})["Item"]
    assert (item["reviewed_by"]["S"], item["reviewed_by_sub"]["S"]) == ("asha", sub)
    trail = dynamodb.query(
        TableName="audit",
        KeyConditionExpression="decision_id = :d",
        ExpressionAttributeValues={":d": {"S": seeded.decision_id}},
    )["Items"]
    (verdict,) = [i for i in trail if "verdict" in i]
    assert (verdict["reviewer"]["S"], verdict["reviewer_sub"]["S"], verdict["role"]["S"]) == (
        "asha",
        sub,
        "analyst",
    )

    # Signing out drops the cookie and signs out of the hosted UI, which comes back to /login
    out = request(
        "POST",
        "/logout",
        {**headers, "Content-Type": "application/x-www-form-urlencoded"},
        body=urlencode({"csrf": csrf}),
        requestContext=context,
    )
    assert out["statusCode"] == 303 and "/logout?" in out["headers"]["Location"]
    assert parse_qs(urlparse(out["headers"]["Location"]).query)["logout_uri"] == [f"{CONSOLE_URL}/login"]
    assert out["multiValueHeaders"]["Set-Cookie"] == [
        "__Host-rg_console=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"
    ]


def test_a_code_redeemed_with_another_browsers_verifier_signs_nobody_in(aws, user_pool):
    """PKCE: a code stolen from asha's redirect, replayed by a browser that started its own sign-in
    (its own state and verifier), is refused by the token endpoint: no session cookie is set."""
    handler, *_ = aws
    pool, _ = user_pool
    victim = handler.lambda_handler({"httpMethod": "GET", "path": "/login", "headers": {}}, LambdaContext())
    victim_query = {k: v[0] for k, v in parse_qs(urlparse(victim["headers"]["Location"]).query).items()}
    code = pool.issue_code("asha", ("lead",), victim_query["code_challenge"], victim_query["redirect_uri"])
    thief = handler.lambda_handler({"httpMethod": "GET", "path": "/login", "headers": {}}, LambdaContext())
    thief_state = parse_qs(urlparse(thief["headers"]["Location"]).query)["state"][0]
    answer = handler.lambda_handler(
        {
            "httpMethod": "GET",
            "path": "/callback",
            "headers": {"Cookie": thief["multiValueHeaders"]["Set-Cookie"][0].split(";")[0]},
            "queryStringParameters": {"code": code, "state": thief_state},
        },
        LambdaContext(),
    )
    assert (answer["statusCode"], answer["headers"]["X-Error-Code"]) == (401, "sign_in_failed")
    assert "Set-Cookie" not in (answer.get("multiValueHeaders") or {})


def _tampered_groups(token: str) -> str:
    head, body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["cognito:groups"] = ["lead"]
    encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{encoded}.{signature}"


class KeywordEmbedder:
    """Titan's stand-in (its request is tested in test_similar_cases_aws): a unit vector per topic."""

    TOPICS = ("empty", "size", "damaged")

    def __init__(self) -> None:
        self.texts: list[str] = []

    def embed(self, text: str) -> list[float]:
        self.texts.append(text)
        vector = [0.0] * DIMENSIONS
        topic = next((i for i, word in enumerate(self.TOPICS) if word in text.lower()), len(self.TOPICS))
        vector[topic] = 1.0
        vector[10 + len(text) % 7] = 0.05  # paraphrases are near, not equal
        return vector


def _returns_parquet(rows: list[tuple[str, str, datetime]]) -> bytes:
    import pyarrow as pa

    table = pa.table(
        {
            "return_id": [f"R{i}" for i in range(len(rows))],
            "reason_code": [code for _, code, _ in rows],
            "reason": [reason for reason, _, _ in rows],
            "return_time": pa.array([when for _, _, when in rows], pa.timestamp("us", tz="UTC")),
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("aws", [VECTORS], ids=["vectors"], indirect=True)
def test_reason_clusters_in_aws_group_the_lakes_reasons_through_titan_and_the_index_for_leads(
    aws, monkeypatch
):
    """The clusters function reads the lake's latest written reasons, embeds each new one once (the
    `reasons` index keeps its vector: a second run embeds none), groups them with the local report's
    code and writes the report; a lead sees it at /clusters with the customers' text escaped."""
    handler, _, s3, _ = aws
    vectors = boto3.client("s3vectors", region_name="us-east-1")
    vectors.create_index(
        vectorBucketName="case-vectors",
        indexName="reasons",
        dataType="float32",
        dimension=DIMENSIONS,
        distanceMetric="cosine",
    )
    # a reason an earlier run embedded that is no longer among the latest ones
    vectors.put_vectors(
        vectorBucketName="case-vectors",
        indexName="reasons",
        vectors=[{"key": reason_key("colour faded last season"), "data": {"float32": [0.1] * DIMENSIONS}}],
    )
    now = datetime.now(timezone.utc)
    hostile = "<script>alert(1)</script> the box was EMPTY"
    rows = [
        ("the box was empty", "empty_box", now - timedelta(days=1)),
        ("Box came empty, nothing inside", "empty_box", now - timedelta(days=2)),
        (hostile, "empty_box", now - timedelta(days=2)),
        ("wrong size, too small", "size", now - timedelta(days=1)),
        ("size too large for me", "size", now - timedelta(days=3)),
        ("arrived damaged and cracked", "damaged", now),
        ("", "other", now),  # no written reason: not clustered
    ]
    s3.put_object(
        Bucket=LAKE, Key=f"raw/returns/dt={now:%Y-%m-%d}/part-0.parquet", Body=_returns_parquet(rows[:4])
    )
    old = now - timedelta(days=3)
    s3.put_object(
        Bucket=LAKE, Key=f"raw/returns/dt={old:%Y-%m-%d}/part-0.parquet", Body=_returns_parquet(rows[4:])
    )
    assert (
        call(handler, "GET", "/clusters", user="ravi", groups="lead")["body"].count("No reason clusters yet")
        == 1
    )

    for name, value in {**VECTORS, "RG_REASONS_INDEX": "reasons"}.items():
        monkeypatch.setenv(name, value)
    clusters = _load("console_clusters_under_test", "console_clusters")
    embedder = KeywordEmbedder()
    clusters.encoder._embedder = embedder
    first = clusters.lambda_handler({}, LambdaContext())
    assert (first["reasons"], first["embedded"]) == (6, 6)
    assert first["report"] == f"reports/reason-clusters/dt={now:%Y-%m-%d}/clusters.html"
    again = clusters.lambda_handler({}, LambdaContext())
    assert again["embedded"] == 0 and len(embedder.texts) == 6  # each reason embedded once in its window
    # the index forgets what left the window: it holds this report's six reasons and nothing older
    assert (first["forgotten"], again["forgotten"]) == (1, 0)
    listed = vectors.list_vectors(vectorBucketName="case-vectors", indexName="reasons")["vectors"]
    assert {v["key"] for v in listed} == {reason_key(text) for text, _, _ in rows[:6]}

    page = call(handler, "GET", "/clusters", user="ravi", groups="lead")
    assert page["statusCode"] == 200
    table = re.search(r'<table id="reason-clusters">.*?</table>', page["body"]).group(0)  # type: ignore[union-attr]
    cells = re.findall(r"<tr><td>(.*?)</td><td>(\d+)</td>", table)
    sizes = {label: int(size) for label, size in cells}
    assert sorted(sizes.values(), reverse=True)[:3] == [3, 2, 1]  # empty box, size, damaged
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page["body"] and "<script>alert" not in page["body"]
    assert call(handler, "GET", "/clusters", groups="analyst")["statusCode"] == 403
