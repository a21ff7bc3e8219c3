"""console Lambda: the review console behind API Gateway, signed in by the Cognito authorizer.

Thin: the API Gateway authorizer has checked the caller's Cognito token (signature, issuer, audience,
expiry) before this runs, and hands over its claims. This module turns the proxy event into a call of
`returnguard.aws.console_app.ConsoleApp` (the pages and verdicts the local console serves) with the
person's identity: the user name and the role from `cognito:groups` (`lead` over `analyst`; in neither
group: 403). Every verdict records that user and role, and indexes the case for similar cases
(Titan embeddings in S3 Vectors, returnguard/aws/similar_cases.py). The queue, the case view's linked
accounts and the summary read the cases that needed a person from the decisions' sparse by_review index
(a Query per review status, never a Scan of the decisions: no snapshot survives between invocations).
A lead's `/summary` page is written by Bedrock (Converse) when the stage has a model, through the daily
e-mail's code path (returnguard/aws/daily_summary.py: checked, the template on any failure).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from returnguard import console_pages as pages
from returnguard.aws.console_app import ConsoleApp, Identity, Response, error_response, role_of
from returnguard.aws.daily_summary import SummaryWriter
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


settings = Settings.model_validate(dict(os.environ))  # fails fast, naming the missing variable
logger = Logger()
store = ReviewStore(
    boto3.client("dynamodb"),
    settings.decisions_table,
    settings.audit_table,
    S3LabelSink(boto3.client("s3"), settings.lake_bucket),
    settings.flagged_table,
)
writer = SummaryWriter(boto3.client("bedrock-runtime", config=bedrock_config(10.0)), settings.model_id)


def _written(sections: Sections) -> tuple[str, str]:
    summary = writer.write(sections, datetime.now(timezone.utc))
    return summary.text, summary.source


similar = (
    VectorSimilarCases(
        TitanEmbedder(boto3.client("bedrock-runtime")),
        boto3.client("s3vectors"),
        settings.vector_bucket,
        settings.vector_index,
        store,
    )
    if settings.vector_bucket and settings.vector_index
    else None
)
app = ConsoleApp(
    store,
    cases=store.review_cases,
    queue=lambda query: store.review_cases(queue_statuses(query)),
    summary=lambda cases: daily_summary(cases, datetime.now(timezone.utc), population=POPULATION),
    write=_written,
    **({"remember": similar.remember, "similar": similar} if similar else {}),
)


def groups_of(claims: dict[str, Any]) -> list[str]:
    """`cognito:groups` as API Gateway's Cognito authorizer passes it: a list, or one string such as
    `analyst,lead` or `[analyst lead]`."""
    value = claims.get("cognito:groups") or []
    if isinstance(value, str):
        return [g for g in re.split(r"[\s,\[\]]+", value) if g]
    return [str(g) for g in value]


def identity_of(event: dict[str, Any]) -> Identity | None:
    """The signed-in person from the authorizer's claims; None when there are none (no authorizer ran).
    The CSRF token is derived from the caller's bearer token: a page's forms carry it back, and a
    cross-site form cannot know it."""
    claims = ((event.get("requestContext") or {}).get("authorizer") or {}).get("claims") or {}
    user = claims.get("cognito:username") or claims.get("username") or ""
    if not user:
        return None
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    token = headers.get("authorization", "")
    csrf = hashlib.sha256(f"console-csrf:{token}".encode()).hexdigest() if token else ""
    return Identity(str(user), role_of(groups_of(claims)) or "", csrf)


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
    if method in ("GET", "HEAD"):
        public = app.public(path)
        if public is not None:
            return public
    if who is None:
        raise ConsoleError(401, "not_signed_in", "sign in first")
    if method in ("GET", "HEAD"):
        return app.get(path, event.get("queryStringParameters") or {}, who)
    if method == "POST":
        return app.post(path, _form(event), who)
    raise ConsoleError(405, "method_not_allowed", "GET or POST only")


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    who = identity_of(event)
    try:
        response = _route(event, who)
    except ConsoleError as error:
        response = error_response(error, who)
    if response.status >= 400:
        logger.info("console refused", extra={"status": response.status, "user": who.user if who else ""})
    headers = {**pages.SECURITY_HEADERS, "Content-Type": response.content_type, **response.headers}
    text = response.content_type.startswith(("text/", "image/svg", "application/json"))
    body = response.body if event.get("httpMethod") != "HEAD" else b""
    return {
        "statusCode": response.status,
        "headers": headers,
        "body": body.decode("utf-8") if text else base64.b64encode(body).decode("ascii"),
        "isBase64Encoded": not text,
    }
