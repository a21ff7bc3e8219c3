"""The console's check of Cognito ID tokens (returnguard/aws/cognito.py), against tokens signed by a local
key as Cognito signs them (tests/cognito_pool.py): what passes, and every way a token must fail."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from urllib.parse import parse_qs, urlparse

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from returnguard.aws.cognito import CognitoTokens, SignIn, TokenError, person_of, rsa_sha256_verify, token_of
from tests.cognito_pool import Pool, b64url


@pytest.fixture(scope="module")
def pool() -> Pool:
    return Pool()


def tokens_for(pool: Pool, fetched: list[str] | None = None, **kwargs) -> CognitoTokens:
    def fetch(url: str):
        if fetched is not None:
            fetched.append(url)
        return pool.jwks()

    return CognitoTokens(pool.issuer, pool.client_id, fetch=fetch, **kwargs)


def test_a_token_the_pool_signed_names_the_person_and_their_groups(pool):
    fetched: list[str] = []
    tokens = tokens_for(pool, fetched)
    claims = tokens.verify(pool.token("asha", ("analyst", "lead")))
    person = person_of(claims)
    assert (person.user, person.groups) == ("asha", ("analyst", "lead"))
    assert person.subject == claims["sub"] and len(person.subject) == 36
    tokens.verify(pool.token("ravi"))
    assert fetched == [f"{pool.issuer}/.well-known/jwks.json"]  # the key set is fetched once


def _tampered(token: str) -> str:
    head, body, signature = token.split(".")
    claims = json.loads(base64_decode(body))
    claims["cognito:groups"] = ["lead"]
    return f"{head}.{b64url(json.dumps(claims).encode())}.{signature}"


def base64_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda p: _tampered(p.token("asha")), "bad_signature"),  # an analyst who makes herself a lead
        (
            lambda p: p.sign(
                p.claims("asha"), key=rsa.generate_private_key(public_exponent=65537, key_size=2048)
            ),
            "bad_signature",
        ),
        (lambda p: p.sign(p.claims("asha"), header={"kid": p.kid, "alg": "none"}), "bad_algorithm"),
        (lambda p: p.sign(p.claims("asha"), header={"kid": p.kid, "alg": "HS256"}), "bad_algorithm"),
        (lambda p: p.sign(p.claims("asha"), header={"kid": "key-9", "alg": "RS256"}), "unknown_key"),
        (lambda p: p.token("asha", aud="another-client"), "wrong_audience"),
        (lambda p: p.token("asha", iss="https://cognito-idp.ap-south-1.amazonaws.com/other"), "wrong_issuer"),
        (lambda p: p.token("asha", token_use="access"), "wrong_token_use"),
        (lambda p: p.token("asha", exp=int(time.time()) - 120), "expired"),
        (lambda p: p.token("asha", exp=None), "expired"),
        (lambda p: p.token("asha", iat=int(time.time()) + 600), "not_yet_valid"),
        (lambda p: p.token("asha", sub=None), "malformed"),
        (lambda p: "not.a-token", "malformed"),
        (lambda p: p.token("asha").rsplit(".", 1)[0] + ".", "bad_signature"),
    ],
    ids=[
        "tampered_groups",
        "other_key",
        "alg_none",
        "alg_hs256",
        "unknown_kid",
        "other_client",
        "other_pool",
        "access_token",
        "expired",
        "no_exp",
        "issued_in_future",
        "no_subject",
        "garbage",
        "no_signature",
    ],
)
def test_a_token_is_refused_unless_the_pool_signed_it_for_this_client_as_an_id_token_in_date(
    pool, make, code
):
    with pytest.raises(TokenError) as refused:
        tokens_for(pool).verify(make(pool))
    assert refused.value.code == code


def test_an_unknown_key_id_fetches_the_key_set_again_but_not_on_every_request(pool):
    """Cognito rotates keys: a new kid refetches; a flood of made-up kids does not hammer the endpoint."""
    now = [1000.0]
    fetched: list[str] = []
    tokens = tokens_for(pool, fetched, clock=lambda: now[0])
    forged = pool.sign(pool.claims("asha", exp=None), header={"kid": "key-9", "alg": "RS256"})
    for _ in range(3):
        with pytest.raises(TokenError):
            tokens.verify(forged)
    assert len(fetched) == 1
    now[0] += 301
    with pytest.raises(TokenError):
        tokens.verify(forged)
    assert len(fetched) == 2


def test_the_rsa_check_agrees_with_a_crypto_library_on_good_and_bad_signatures():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = key.public_key().public_numbers()
    for size in (0, 1, 55, 1000):
        message = os.urandom(size)
        signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        assert rsa_sha256_verify(numbers.n, numbers.e, message, signature)
        assert not rsa_sha256_verify(numbers.n, numbers.e, message + b"x", signature)
        flipped = bytes([signature[0] ^ 1]) + signature[1:]
        assert not rsa_sha256_verify(numbers.n, numbers.e, message, flipped)
        assert not rsa_sha256_verify(numbers.n, numbers.e, message, signature[1:])
        # the same digest signed with SHA-1's DigestInfo is not a SHA-256 signature
        sha1 = key.sign(message, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
        assert not rsa_sha256_verify(numbers.n, numbers.e, message, sha1)


def test_the_token_comes_from_the_session_cookie_else_a_bearer_header():
    assert token_of({"Cookie": "a=1; __Host-rg_console=t.o.k; b=2"}) == "t.o.k"
    assert token_of({"authorization": "Bearer x.y.z"}) == "x.y.z"
    assert token_of({"Authorization": "Basic dXNlcjpwYXNz"}) == ""
    assert token_of({"Cookie": "rg_console=t.o.k"}) == ""  # only the __Host- cookie counts


def test_a_sign_in_sends_the_challenge_and_redeems_the_code_with_its_own_verifier_and_state():
    posted: list[tuple[str, dict[str, str]]] = []
    sign_in = SignIn(
        "https://rg.auth.ap-south-1.amazoncognito.com",
        "client-1",
        "https://api.example/dev/callback",
        post=lambda url, form: posted.append((url, form)) or {"id_token": "i.d.t"},
    )
    location, cookie = sign_in.start()
    query = {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}
    assert location.startswith("https://rg.auth.ap-south-1.amazoncognito.com/oauth2/authorize?")
    assert (query["response_type"], query["code_challenge_method"], query["scope"]) == (
        "code",
        "S256",
        "openid email profile",
    )
    assert cookie.startswith("__Host-rg_login=") and "HttpOnly" in cookie and "Secure" in cookie
    state, verifier = cookie.split(";")[0].split("=", 1)[1].split(".")
    assert query["state"] == state
    assert query["code_challenge"] == b64url(hashlib.sha256(verifier.encode()).digest())
    with pytest.raises(TokenError) as refused:
        sign_in.finish("code-1", "another-state", f"{state}.{verifier}")
    assert refused.value.code == "wrong_state" and posted == []
    assert sign_in.finish("code-1", state, f"{state}.{verifier}") == {"id_token": "i.d.t"}
    ((url, form),) = posted
    assert url == "https://rg.auth.ap-south-1.amazoncognito.com/oauth2/token"
    assert form == {
        "grant_type": "authorization_code",
        "client_id": "client-1",
        "code": "code-1",
        "redirect_uri": "https://api.example/dev/callback",
        "code_verifier": verifier,
    }
