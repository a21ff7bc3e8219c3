"""The deployed console's sign-in and who is signed in (lambdas/console/handler.py): `/login` sends the
browser to Cognito's hosted UI (authorization code with PKCE), `/callback` trades the code for the ID token
and keeps it in an HttpOnly session cookie, `/logout` drops it and signs out of the hosted UI.

Every other console request has passed API Gateway's REQUEST authorizer, which verified that token
(returnguard/aws/cognito.py) and hands over `user`, `sub` and `groups`: `identity` turns them into the
`Identity` the pages and verdicts use. The pages link from `/`; the console is served under the API's
stage path (`/<stage>`), so `rooted` puts that path in front of the links and redirects.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from returnguard.aws.cognito import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    CognitoTokens,
    SignIn,
    TokenError,
    cookie_value,
    expired_cookie,
    session_cookie,
    token_of,
)
from returnguard.aws.console_app import Identity, Response, redirect, role_of
from returnguard.console import ConsoleError

MAX_SESSION_S = 3600  # the app client's ID token validity
_LINK = re.compile(r'((?:href|src|action|data-href)=")/')


def groups_of(value: Any) -> list[str]:
    """The authorizer context's `groups` (`analyst,lead`), or a `cognito:groups` claim as a list or as
    API Gateway flattens one (`[analyst lead]`)."""
    if isinstance(value, str):
        return [g for g in re.split(r"[\s,\[\]]+", value) if g]
    return [str(g) for g in value or []]


def csrf_for(token: str) -> str:
    """A page's forms carry this back; it is derived from the HttpOnly token, which a cross-site form
    cannot read."""
    return hashlib.sha256(f"console-csrf:{token}".encode()).hexdigest()


class ConsoleSignIn:
    def __init__(self, sign_in: SignIn, tokens: CognitoTokens, console_url: str):
        self._sign_in, self._tokens = sign_in, tokens
        self.console_url = console_url.rstrip("/")
        self.root = urlparse(self.console_url).path.rstrip("/")  # "/dev" under the stage path

    def identity(self, event: Mapping[str, Any]) -> Identity | None:
        """Who the authorizer let through; None when no authorizer context came (a public path)."""
        context = (event.get("requestContext") or {}).get("authorizer") or {}
        user, subject = str(context.get("user") or ""), str(context.get("sub") or "")
        if not user or not subject:
            return None
        token = token_of(dict(event.get("headers") or {}))
        role = role_of(groups_of(context.get("groups"))) or ""
        return Identity(user, role, csrf_for(token) if token else "", subject)

    def route(
        self, method: str, path: str, params: Mapping[str, str], headers: Mapping[str, str]
    ) -> Response | None:
        """The sign-in's own GET pages (public); None for every other request."""
        if method != "GET":
            return None
        if path == "/login":
            location, cookie = self._sign_in.start()
            return Response(302, b"", "text/plain; charset=utf-8", {"Location": location}, [cookie])
        if path == "/callback":
            return self._callback(params, headers)
        return None

    def _callback(self, params: Mapping[str, str], headers: Mapping[str, str]) -> Response:
        if params.get("error"):  # the hosted UI sends the person back with an error code
            raise ConsoleError(401, "sign_in_refused", "the sign-in was refused or cancelled: sign in again")
        cookies = {k.lower(): v for k, v in headers.items()}.get("cookie", "")
        try:
            answer = self._sign_in.finish(
                params.get("code", ""), params.get("state", ""), cookie_value(cookies, LOGIN_COOKIE)
            )
            token = answer["id_token"]
            self._tokens.verify(token)
        except TokenError as error:
            raise ConsoleError(401, error.code, f"{error}: sign in again") from error
        lifetime = min(int(answer.get("expires_in") or MAX_SESSION_S), MAX_SESSION_S)
        response = redirect("/")
        response.cookies += [session_cookie(token, lifetime), expired_cookie(LOGIN_COOKIE)]
        return response

    def logout(self, form: Mapping[str, str], who: Identity) -> Response:
        """POST /logout: drop the session and sign out of the hosted UI, which returns to /login."""
        if not who.csrf or not secrets.compare_digest(form.get("csrf", ""), who.csrf):
            raise ConsoleError(403, "csrf", "the form's CSRF token is missing or wrong: reload the page")
        location = self._sign_in.sign_out_url(f"{self.console_url}/login")
        return Response(
            303, b"", "text/plain; charset=utf-8", {"Location": location}, [expired_cookie(SESSION_COOKIE)]
        )

    def rooted(self, response: Response) -> Response:
        """The console's own links and redirects under the stage path (a no-op at a domain's root)."""
        if not self.root:
            return response
        location = response.headers.get("Location", "")
        if location.startswith("/"):
            response.headers["Location"] = self.root + location
        if response.content_type.startswith("text/html"):
            response.body = _LINK.sub(rf"\g<1>{self.root}/", response.body.decode("utf-8")).encode("utf-8")
        return response
