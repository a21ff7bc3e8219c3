"""A stand-in for a Cognito user pool in tests: an RSA key that signs ID tokens as Cognito does (RS256,
`kid` in the header, `iss`, `aud`, `token_use`, `sub`, `cognito:username`, `cognito:groups`) and the pool's
JSON Web Key Set. `serve()` adds the token endpoint of the hosted UI on a local HTTP server (127.0.0.1, a
free port), which checks the PKCE verifier against the challenge as Cognito does."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

CLIENT_ID = "console-client-1"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class Pool:
    issuer: str = "https://cognito-idp.ap-south-1.amazonaws.com/ap-south-1_TestPool"
    client_id: str = CLIENT_ID
    kid: str = "key-1"
    key: Any = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def jwks(self) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()
        size = (numbers.n.bit_length() + 7) // 8
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "alg": "RS256",
                    "use": "sig",
                    "kid": self.kid,
                    "n": b64url(numbers.n.to_bytes(size, "big")),
                    "e": b64url(numbers.e.to_bytes(3, "big")),
                }
            ]
        }

    def claims(self, user: str, groups: tuple[str, ...] = ("analyst",), **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "sub": str(uuid.uuid5(uuid.NAMESPACE_DNS, user)),
            "cognito:username": user,
            "cognito:groups": list(groups),
            "iss": self.issuer,
            "aud": self.client_id,
            "token_use": "id",
            "auth_time": now,
            "iat": now,
            "exp": now + 3600,
            "email": f"{user}@example.com",
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(self, claims: dict[str, Any], header: dict[str, Any] | None = None, key: Any = None) -> str:
        head = b64url(json.dumps(header or {"kid": self.kid, "alg": "RS256"}).encode())
        body = b64url(json.dumps(claims).encode())
        signature = (key or self.key).sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{head}.{body}.{b64url(signature)}"

    def token(self, user: str, groups: tuple[str, ...] = ("analyst",), **changes: Any) -> str:
        return self.sign(self.claims(user, groups, **changes))

    def issue_code(self, user: str, groups: tuple[str, ...], challenge: str, redirect_uri: str) -> str:
        """What the hosted UI does once the person has signed in: a one-time code bound to the challenge."""
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "user": user,
            "groups": groups,
            "challenge": challenge,
            "redirect_uri": redirect_uri,
        }
        return code

    def exchange(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The token endpoint (authorization_code grant, a public client with PKCE S256)."""
        grant = self.codes.pop(form.get("code", ""), None)  # one use only
        if form.get("grant_type") != "authorization_code" or form.get("client_id") != self.client_id:
            return 400, {"error": "invalid_client"}
        if grant is None or grant["redirect_uri"] != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant"}
        verifier = form.get("code_verifier", "")
        if b64url(hashlib.sha256(verifier.encode()).digest()) != grant["challenge"]:
            return 400, {"error": "invalid_grant"}
        token = self.token(grant["user"], grant["groups"])
        return 200, {"id_token": token, "access_token": "a", "token_type": "Bearer", "expires_in": 3600}


@contextmanager
def serve(pool: Pool) -> Iterator[str]:
    """The pool's JWKS (`<url>/pool/.well-known/jwks.json`) and token endpoint (`<url>/oauth2/token`) on
    127.0.0.1; yields the base URL. Sets `pool.issuer` to `<url>/pool`."""

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/pool/.well-known/jwks.json":
                self._send(200, pool.jwks())
            else:
                self._send(404, {"error": "not_found"})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(parse_qsl(self.rfile.read(length).decode()))
            if self.path != "/oauth2/token":
                self._send(404, {"error": "not_found"})
            else:
                self._send(*pool.exchange(form))

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    pool.issuer = f"{url}/pool"
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
