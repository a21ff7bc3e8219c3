"""console_authorizer Lambda: API Gateway's REQUEST authorizer for the review console.

Verifies the Cognito ID token a console request carries (the session cookie the sign-in set, or
`Authorization: Bearer`) with `returnguard.aws.cognito.CognitoTokens`, and lets the request through with
who it is as the authorizer context (`user`, `sub`, `groups`), which the console function reads. Any
failure raises `Unauthorized`, which API Gateway answers with 401 before the console function runs.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from returnguard.aws.cognito import CognitoTokens, TokenError, person_of, token_of


class Settings(BaseModel):
    issuer: str = Field(alias="RG_COGNITO_ISSUER", min_length=1)
    client_id: str = Field(alias="RG_CONSOLE_CLIENT_ID", min_length=1)


settings = Settings.model_validate(dict(os.environ))
logger = Logger()
tokens = CognitoTokens(settings.issuer, settings.client_id)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    token = token_of(event.get("headers") or {})
    try:
        if not token:
            raise TokenError("no_token", "no session cookie and no bearer token")
        person = person_of(tokens.verify(token))
    except TokenError as error:
        logger.info("console request refused", extra={"reason": error.code})
        raise Exception("Unauthorized") from error  # API Gateway's fixed message for a 401
    return {
        "principalId": person.subject,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": event["methodArn"]}
            ],
        },
        "context": {"user": person.user, "sub": person.subject, "groups": ",".join(person.groups)},
    }
