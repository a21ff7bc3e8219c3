"""console Lambda: the review console behind API Gateway, for analysts signed in with Cognito.

Thin. `/login`, `/callback` and `/logout` are the hosted UI's authorization-code sign-in with PKCE
(returnguard/aws/console_sign_in.py); every other page has passed the REQUEST authorizer
(lambdas/console_authorizer/handler.py), which verified the person's Cognito ID token and hands over
`user`, `sub` and `groups`. This module turns the proxy event into a call of
`returnguard.aws.console_app.ConsoleApp` (the pages and verdicts the local console serves) with that
identity: the role from the groups (`lead` over `analyst`; in neither group: 403). Every verdict records
the user, the token's subject and the role, and indexes the case for similar cases (Titan embeddings in
S3 Vectors, returnguard/aws/similar_cases.py). The queue, the case view's linked accounts and the summary
read the cases that needed a person from the decisions' sparse by_review index (a Query per review
status, never a Scan of the decisions: no snapshot survives between invocations). A lead's `/summary`
page is written by Bedrock (Converse) when the stage has a model, through the daily e-mail's code path
(returnguard/aws/daily_summary.py: checked, the template on any failure); their `/clusters` page shows
the latest report of the clusters function (lambdas/console_clusters/handler.py) from the lake.
"""

from __future__ import annotations

import base64
import os
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from returnguard import console_pages as pages
from returnguard.aws.clients import CONSOLE, bounded_client
from returnguard.aws.cognito import CognitoTokens, SignIn
from returnguard.aws.console_app import ConsoleApp, Identity, Response, error_response
from returnguard.aws.console_sign_in import ConsoleSignIn
from returnguard.aws.daily_summary import SummaryWriter
from returnguard.aws.reason_clusters import LATEST_REPORT
from returnguard.aws.reviews import ReviewStore, S3LabelSink
from returnguard.aws.similar_cases import TitanEmbedder, VectorSimilarCases
from returnguard.console import ConsoleError, daily_summary, queue_statuses
from returnguard.console_summary import Sections
from returnguard.narrative import bedrock_config

MAX_FORM = 16 * 1024
POPULATION = "decisions that needed a person"  # what the review index holds: the summary says so


class Settings(BaseModel):
    decisions_table: str = Field(alias="RG_DECISIONS_TABLE", min_length=1)
    audit_table: str = Field(alias="RG_AUDIT_TABLE", min_length=1)
    flagged_table: str = Field(alias="RG_FLAGGED_TABLE", min_length=1)
    lake_bucket: str = Field(alias="RG_LAKE_BUCKET", min_length=1)
    vector_bucket: str = Field(alias="RG_VECTOR_BUCKET", default="")  # empty: no similar cases
    vector_index: str = Field(alias="RG_VECTOR_INDEX", default="")
    model_id: str = Field(alias="RG_BEDROCK_MODEL_ID", default="")  # the /summary page: empty = template
    issuer: str = Field(alias="RG_COGNITO_ISSUER", min_length=1)  # https://cognito-idp.<region>.../<pool>
    client_id: str = Field(alias="RG_CONSOLE_CLIENT_ID", min_length=1)
    domain_url: str = Field(alias="RG_COGNITO_DOMAIN_URL", min_length=1)  # the hosted UI
    console_url: str = Field(alias="RG_CONSOLE_URL", min_length=1)  # https://<api>/<stage>


settings = Settings.model_validate(dict(os.environ))  # fails fast, naming the missing variable
logger = Logger()
lake = bounded_client("s3", CONSOLE)
store = ReviewStore(
    bounded_client("dynamodb", CONSOLE),
    settings.decisions_table,
    settings.audit_table,
    S3LabelSink(lake, settings.lake_bucket),
    settings.flagged_table,
)
sign_in = ConsoleSignIn(
    SignIn(settings.domain_url, settings.client_id, f"{settings.console_url.rstrip('/')}/callback"),
    CognitoTokens(settings.issuer, settings.client_id),
    settings.console_url,
)
writer = SummaryWriter(boto3.client("bedrock-runtime", config=bedrock_config(10.0)), settings.model_id)


def _written(sections: Sections) -> tuple[str, str]:
    summary = writer.write(sections, datetime.now(timezone.utc))
    return summary.text, summary.source


similar = (
    VectorSimilarCases(
        TitanEmbedder(bounded_client("bedrock-runtime", CONSOLE)),
        bounded_client("s3vectors", CONSOLE),
        settings.vector_bucket,
        settings.vector_index,
        store,
    )
    if settings.vector_bucket and settings.vector_index
    else None
)


def _clusters() -> str | None:
    """The latest reason-clusters report the clusters function wrote to the lake; None before its first run."""
    try:
        answer = lake.get_object(Bucket=settings.lake_bucket, Key=LATEST_REPORT)
    except lake.exceptions.NoSuchKey:
        return None
    return answer["Body"].read().decode("utf-8")


app = ConsoleApp(
    store,
    cases=store.review_cases,
    queue=lambda query: store.review_cases(queue_statuses(query)),
    summary=lambda cases: daily_summary(cases, datetime.now(timezone.utc), population=POPULATION),
    write=_written,
    clusters=_clusters,
    **({"remember": similar.remember, "similar": similar} if similar else {}),
)


def _form(event: dict[str, Any]) -> dict[str, str]:
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    raw = event.get("body") or ""
    body = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode("utf-8")
    if len(body) > MAX_FORM:
        raise ConsoleError(413, "body_too_large", f"a form is at most {MAX_FORM} bytes")
    if (headers.get("content-type") or "").split(";")[
        0
    ].strip().lower() != "application/x-www-form-urlencoded":
        raise ConsoleError(
            415, "unsupported_media_type", "send the form as application/x-www-form-urlencoded"
        )
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError as error:
        raise ConsoleError(400, "bad_request", "the form is not UTF-8") from error


def _route(event: dict[str, Any], who: Identity | None) -> Response:
    method = (event.get("httpMethod") or "GET").upper()
    path = event.get("path") or "/"
    params = event.get("queryStringParameters") or {}
    if method in ("GET", "HEAD"):
        public = app.public(path) or sign_in.route("GET", path, params, event.get("headers") or {})
        if public is not None:
            return public
    if who is None:
        raise ConsoleError(401, "not_signed_in", "sign in first")
    if method in ("GET", "HEAD"):
        return app.get(path, params, who)
    if method == "POST":
        form = _form(event)
        return sign_in.logout(form, who) if path == "/logout" else app.post(path, form, who)
    raise ConsoleError(405, "method_not_allowed", "GET or POST only")


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    who = sign_in.identity(event)
    try:
        response = _route(event, who)
    except ConsoleError as error:
        response = error_response(error, who)
    if response.status >= 400:
        logger.info("console refused", extra={"status": response.status, "user": who.user if who else ""})
    response = sign_in.rooted(response)
    headers = {**pages.SECURITY_HEADERS, "Content-Type": response.content_type, **response.headers}
    text = response.content_type.startswith(("text/", "image/svg", "application/json"))
    body = response.body if event.get("httpMethod") != "HEAD" else b""
    return {
        "statusCode": response.status,
        "headers": headers,
        "multiValueHeaders": {"Set-Cookie": response.cookies} if response.cookies else {},
        "body": body.decode("utf-8") if text else base64.b64encode(body).decode("ascii"),
        "isBase64Encoded": not text,
    }
