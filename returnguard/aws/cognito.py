"""Analysts' sign-in to the deployed console: Cognito's hosted UI with the authorization-code flow and PKCE,
and the check of the ID token it issues (docs/console.md, "In AWS").

A browser navigation cannot carry a token in a header, so after sign-in the ID token travels in an
HttpOnly session cookie, and API Gateway's REQUEST authorizer (lambdas/console_authorizer/handler.py)
verifies it on every console request with `CognitoTokens.verify`: RS256 against the user pool's JSON Web
Key Set, issuer, audience (the console's app client), `token_use` = id, expiry. The RSA check is RFC 8017's
PKCS#1 v1.5 verification by re-encoding the expected message and comparing it whole (no parsing of the
decrypted block), in the standard library: the Lambda runtime has no JWT or crypto package, and this is
the only algorithm Cognito signs with.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SESSION_COOKIE = "__Host-rg_console"  # __Host-: Secure, Path=/, no Domain: only this host ever gets it
LOGIN_COOKIE = "__Host-rg_login"  # the sign-in's state and PKCE verifier, for 10 minutes
SCOPES = ("openid", "email", "profile")
LEEWAY_S = 30  # clock skew accepted on exp and iat
JWKS_REFRESH_S = 300  # an unknown key id fetches the key set again at most this often
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")  # RFC 8017 9.2, note 1


class TokenError(Exception):
    """A token that may not sign anyone in; `code` says why (`malformed`, `bad_signature`, `expired`, ...)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64url_text(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def rsa_sha256_verify(modulus: int, exponent: int, message: bytes, signature: bytes) -> bool:
    """RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 8.2.2): True when `signature` signs `message`."""
    size = (modulus.bit_length() + 7) // 8
    if len(signature) != size or size < len(_SHA256_DIGEST_INFO) + 32 + 11:
        return False
    number = int.from_bytes(signature, "big")
    if number >= modulus:
        return False
    encoded = pow(number, exponent, modulus).to_bytes(size, "big")
    digest_info = _SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
    expected = b"\x00\x01" + b"\xff" * (size - len(digest_info) - 3) + b"\x00" + digest_info
    return hmac.compare_digest(encoded, expected)


def fetch_json(url: str, timeout_s: float = 5.0) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout_s) as answer:  # noqa: S310 (https from settings)
        return json.loads(answer.read())


class CognitoTokens:
    """Verifies the ID tokens of one app client of one user pool. `issuer`:
    `https://cognito-idp.<region>.amazonaws.com/<pool id>`; its key set is `<issuer>/.well-known/jwks.json`,
    fetched on first use (and again, at most every JWKS_REFRESH_S, when a token names an unknown key)."""

    def __init__(
        self,
        issuer: str,
        client_id: str,
        fetch: Callable[[str], dict[str, Any]] = fetch_json,
        clock: Callable[[], float] = time.time,
    ):
        self.issuer, self.client_id = issuer.rstrip("/"), client_id
        self._fetch, self._clock = fetch, clock
        self._keys: dict[str, tuple[int, int]] = {}
        self._fetched_at: float | None = None

    def _key(self, kid: str) -> tuple[int, int]:
        stale = self._fetched_at is None or self._clock() - self._fetched_at >= JWKS_REFRESH_S
        if kid not in self._keys and stale:
            keys = self._fetch(f"{self.issuer}/.well-known/jwks.json").get("keys", [])
            self._keys = {
                str(k["kid"]): (
                    int.from_bytes(_b64url(k["n"]), "big"),
                    int.from_bytes(_b64url(k["e"]), "big"),
                )
                for k in keys
                if k.get("kty") == "RSA" and k.get("kid") and k.get("n") and k.get("e")
            }
            self._fetched_at = self._clock()
        if kid not in self._keys:
            raise TokenError("unknown_key", "the token is signed by a key the user pool does not publish")
        return self._keys[kid]

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or TokenError."""
        parts = token.split(".")
        if len(parts) != 3 or len(token) > 16_384:
            raise TokenError("malformed", "not a signed JSON Web Token")
        try:
            header = json.loads(_b64url(parts[0]))
            claims = json.loads(_b64url(parts[1]))
            signature = _b64url(parts[2])
        except (ValueError, UnicodeDecodeError) as error:
            raise TokenError("malformed", "not a signed JSON Web Token") from error
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise TokenError("malformed", "not a signed JSON Web Token")
        if header.get("alg") != "RS256":  # never `none`, never HMAC with the public key as secret
            raise TokenError("bad_algorithm", "only RS256 tokens are accepted")
        modulus, exponent = self._key(str(header.get("kid", "")))
        if not rsa_sha256_verify(modulus, exponent, f"{parts[0]}.{parts[1]}".encode("ascii"), signature):
            raise TokenError("bad_signature", "the token's signature does not verify")
        now = self._clock()
        if claims.get("iss") != self.issuer:
            raise TokenError("wrong_issuer", "the token is from another user pool")
        if claims.get("token_use") != "id":
            raise TokenError("wrong_token_use", "an ID token is required")
        if claims.get("aud") != self.client_id:
            raise TokenError("wrong_audience", "the token was issued to another app client")
        if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] + LEEWAY_S < now:
            raise TokenError("expired", "the token has expired: sign in again")
        if isinstance(claims.get("iat"), (int, float)) and claims["iat"] - LEEWAY_S > now:
            raise TokenError("not_yet_valid", "the token was issued in the future")
        if not claims.get("sub") or not claims.get("cognito:username"):
            raise TokenError("malformed", "the token names no user")
        return claims


@dataclass(frozen=True)
class Person:
    """Who a verified token signs in: the user name, the token's subject (the user's immutable id in the
    pool) and the groups."""

    user: str
    subject: str
    groups: tuple[str, ...]


def person_of(claims: dict[str, Any]) -> Person:
    groups = claims.get("cognito:groups") or []
    if isinstance(groups, str):
        groups = [groups]
    return Person(str(claims["cognito:username"]), str(claims["sub"]), tuple(str(g) for g in groups))


def token_of(headers: dict[str, str]) -> str:
    """The ID token a request carries: the session cookie, else `Authorization: Bearer <token>`; ''."""
    lowered = {k.lower(): v for k, v in headers.items()}
    cookie = cookie_value(lowered.get("cookie", ""), SESSION_COOKIE)
    if cookie:
        return cookie
    scheme, _, value = lowered.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def cookie_value(header: str, name: str) -> str:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""


def session_cookie(token: str, max_age_s: int) -> str:
    # Lax, not Strict: the first page after the hosted UI's redirect is a navigation that another site
    # started, and would arrive without a Strict cookie. Every POST carries the CSRF token as well.
    return f"{SESSION_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={max_age_s}"


def expired_cookie(name: str) -> str:
    return f"{name}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"


@dataclass(frozen=True)
class SignIn:
    """The hosted UI of one user pool domain for the console's app client. `domain_url`:
    `https://<prefix>.auth.<region>.amazoncognito.com`; `redirect_uri`: the console's `/callback`."""

    domain_url: str
    client_id: str
    redirect_uri: str
    post: Callable[[str, dict[str, str]], dict[str, Any]] | None = None

    def start(self) -> tuple[str, str]:
        """A new sign-in: (the hosted UI's authorize URL, the login cookie that keeps state and verifier)."""
        state = secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)  # 64 characters of [A-Za-z0-9_-]: RFC 7636's 43 to 128
        challenge = _b64url_text(hashlib.sha256(verifier.encode("ascii")).digest())
        query = urllib.parse.urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": " ".join(SCOPES),
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        cookie = f"{LOGIN_COOKIE}={state}.{verifier}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=600"
        return f"{self.domain_url.rstrip('/')}/oauth2/authorize?{query}", cookie

    def finish(self, code: str, state: str, login_cookie: str) -> dict[str, Any]:
        """The token endpoint's answer for the code the hosted UI sent back, after checking that `state`
        is the one this browser's sign-in started with (TokenError otherwise)."""
        expected_state, _, verifier = login_cookie.partition(".")
        if not code or not expected_state or not verifier:
            raise TokenError("no_sign_in", "no sign-in was started in this browser, or it expired")
        if not hmac.compare_digest(state.encode(), expected_state.encode()):
            raise TokenError("wrong_state", "the sign-in's state does not match this browser's")
        form = {
            "grant_type": "authorization_code",
            "client_id": self.client_id,
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": verifier,
        }
        answer = (self.post or post_form)(f"{self.domain_url.rstrip('/')}/oauth2/token", form)
        if not isinstance(answer.get("id_token"), str):
            raise TokenError("sign_in_failed", "the user pool issued no ID token")
        return answer

    def sign_out_url(self, logout_uri: str) -> str:
        query = urllib.parse.urlencode({"client_id": self.client_id, "logout_uri": logout_uri})
        return f"{self.domain_url.rstrip('/')}/logout?{query}"


def post_form(url: str, form: dict[str, str], timeout_s: float = 5.0) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=urllib.parse.urlencode(form).encode("ascii"),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:  # noqa: S310
            return json.loads(answer.read())
    except urllib.error.HTTPError as error:  # invalid_grant: a used, expired or forged code
        raise TokenError("sign_in_failed", f"the user pool refused the code ({error.code})") from error
    except (urllib.error.URLError, TimeoutError, ValueError) as error:
        raise TokenError("sign_in_failed", "the user pool's token endpoint did not answer") from error
