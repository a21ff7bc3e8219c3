"""The review console on 127.0.0.1: queue, case view and verdicts over the local stack's decision store.

Started by `make demo SERVE=1` beside the risk-score API (it prints the console's address and a local
development login). What a deployment does with Cognito (who signs in, in which group) is done here
by a user list with passwords generated at start; the rest is the same code path: the console reads
decisions and audit items from DynamoDB (the moto server), and a verdict becomes a label in the lake.
The pages and verdicts are returnguard/aws/console_app.py, which the AWS function serves too; this
module adds the sign-in (sessions) and the HTTP transport.

Security: a session cookie (HttpOnly, SameSite=Strict) per sign-in, a CSRF token per session checked
on every POST (the sign-in form has its own), a strict Content-Security-Policy (no inline script or
style, nothing from another origin), every asset served from returnguard/console_static/, and every
value escaped (returnguard/console_pages.py).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from returnguard import console_pages as pages
from returnguard.aws.console_app import (
    ROLES,
    ConsoleApp,
    Identity,
    Response,
    error_response,
    linked_accounts,  # noqa: F401 (re-exported: the console's callers import it from here)
)
from returnguard.aws.reviews import ReviewStore
from returnguard.console import Case, ConsoleError

SESSION_COOKIE = "rg_session"
LOGIN_COOKIE = "rg_login"
SESSION_S = 8 * 3600
MAX_FORM = 16 * 1024


@dataclass
class Session:
    user: str
    role: str
    csrf: str
    expires: float


class CaseCache:
    """The decisions in memory, so the queue page filters, counts and sorts without reading the table.

    The first page waits for one Scan of the table. After that a page never waits for one: once the
    snapshot is older than `refresh_s`, the page is answered from it and a background thread reads
    the table again (stale while revalidating). New decisions show up within `refresh_s` plus one
    Scan; a verdict updates its case at once. `refresh_s=0` reads the table on every page (tests)."""

    def __init__(
        self, store: ReviewStore, refresh_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ):
        self._store, self._refresh_s, self._clock = store, refresh_s, clock
        self._lock = threading.Lock()
        self._cases: dict[str, Case] = {}
        self._read_at: float | None = None
        self._refreshing = False

    def _read(self) -> None:
        started = self._clock()
        cases = {c.decision_id: c for c in self._store.cases()}
        with self._lock:
            # verdicts recorded while the Scan ran are newer than what it read
            for decision_id, case in self._cases.items():
                if case.reviewed_at and decision_id in cases and not cases[decision_id].reviewed_at:
                    cases[decision_id] = case
            self._cases, self._read_at, self._refreshing = cases, started, False

    def _refresh_in_background(self) -> None:
        try:
            self._read()
        except Exception:  # the next page tries again; the snapshot stays as it was
            with self._lock:
                self._refreshing = False

    def all(self) -> list[Case]:
        with self._lock:
            fresh = self._read_at is not None and self._clock() - self._read_at <= self._refresh_s
            if fresh or (self._read_at is not None and self._refresh_s > 0 and self._refreshing):
                return list(self._cases.values())
            stale_snapshot = self._read_at is not None and self._refresh_s > 0
            if stale_snapshot:
                self._refreshing = True
        if stale_snapshot:
            threading.Thread(target=self._refresh_in_background, name="console-cache", daemon=True).start()
        else:
            self._read()
        with self._lock:
            return list(self._cases.values())

    def put(self, case: Case) -> None:
        with self._lock:
            self._cases[case.decision_id] = case


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # --- plumbing -------------------------------------------------------------------------------
    def _send(
        self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        self.send_response(status)
        for name, value in {
            **pages.SECURITY_HEADERS,
            "Content-Type": content_type,
            **(headers or {}),
        }.items():
            self.send_header(name, value)
        for cookie in self._cookies:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _html(self, status: int, text: str) -> None:
        self._send(status, text.encode("utf-8"), "text/html; charset=utf-8")

    def _redirect(self, location: str) -> None:
        self._send(303, b"", "text/plain; charset=utf-8", {"Location": location})

    def _error(self, error: ConsoleError) -> None:
        session = self._session()
        self._reply(error_response(error, _identity(session) if session else None))

    def _cookie(self, name: str) -> str:
        cookies: SimpleCookie = SimpleCookie()
        try:
            cookies.load(self.headers.get("Cookie") or "")
        except Exception:
            return ""
        morsel = cookies.get(name)
        return morsel.value if morsel else ""

    def _set_cookie(self, name: str, value: str, max_age: int) -> None:
        self._cookies.append(f"{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}")

    def _session(self) -> Session | None:
        return self.server.session(self._cookie(SESSION_COOKIE))

    def _form(self) -> dict[str, str]:
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_FORM:
            self.close_connection = True
            raise ConsoleError(413, "body_too_large", f"a form is at most {MAX_FORM} bytes")
        body = self.rfile.read(length) if length else b""
        if content_type != "application/x-www-form-urlencoded":
            raise ConsoleError(
                415, "unsupported_media_type", "send the form as application/x-www-form-urlencoded"
            )
        try:
            return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
        except UnicodeDecodeError as error:
            raise ConsoleError(400, "bad_request", "the form is not UTF-8") from error

    def _check_csrf(self, form: Mapping[str, str], expected: str) -> None:
        if not expected or not secrets.compare_digest(form.get("csrf", ""), expected):
            raise ConsoleError(403, "csrf", "the form's CSRF token is missing or wrong: reload the page")

    # --- routes ---------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._cookies: list[str] = []  # one handler serves every request of a kept-alive connection
        try:
            self._get()
        except ConsoleError as error:
            self._error(error)

    do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: N802
        self._cookies = []
        try:
            self._post()
        except ConsoleError as error:
            self._error(error)

    def _get(self) -> None:
        url = urlsplit(self.path)
        path = url.path
        public = self.server.app.public(path)
        if public is not None:
            return self._reply(public)
        if path == "/login":
            # keep a token already issued: another tab (or the browser's own favicon request, redirected
            # here) must not invalidate the form on screen
            token = self._cookie(LOGIN_COOKIE) or secrets.token_urlsafe(24)
            self._set_cookie(LOGIN_COOKIE, token, 600)
            return self._html(200, pages.login_page(token, hint=self.server.login_hint))
        session = self._session()
        if session is None:
            return self._redirect("/login")
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        self._reply(self.server.app.get(path, params, _identity(session)))

    def _post(self) -> None:
        path = urlsplit(self.path).path
        form = self._form()
        if path == "/login":
            self._check_csrf(form, self._cookie(LOGIN_COOKIE))
            token = self.server.sign_in(form.get("username", ""), form.get("password", ""))
            if token is None:
                fresh = secrets.token_urlsafe(24)
                self._set_cookie(LOGIN_COOKIE, fresh, 600)
                return self._html(
                    401, pages.login_page(fresh, "wrong user or password", self.server.login_hint)
                )
            self._set_cookie(LOGIN_COOKIE, "", 0)
            self._set_cookie(SESSION_COOKIE, token, SESSION_S)
            return self._redirect("/")
        session = self._session()
        if session is None:
            raise ConsoleError(401, "not_signed_in", "sign in first")
        if path == "/logout":
            self._check_csrf(form, session.csrf)
            self.server.sign_out(self._cookie(SESSION_COOKIE))
            self._set_cookie(SESSION_COOKIE, "", 0)
            return self._redirect("/login")
        self._reply(self.server.app.post(path, form, _identity(session)))

    def _reply(self, response: Response) -> None:
        self._send(response.status, response.body, response.content_type, response.headers)


def _identity(session: Session) -> Identity:
    return Identity(session.user, session.role, session.csrf, f"local:{session.user}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    store: ReviewStore
    cache: CaseCache
    users: dict[str, tuple[str, str]]
    login_hint: str
    sessions: dict[str, Session]
    app: ConsoleApp

    def sign_in(self, user: str, password: str) -> str | None:
        known = self.users.get(user)
        # compare even for an unknown user, so the answer takes as long either way
        if not secrets.compare_digest(
            password.encode(), (known[0] if known else secrets.token_hex(16)).encode()
        ):
            return None
        assert known is not None
        token = secrets.token_urlsafe(32)
        self.sessions[token] = Session(user, known[1], secrets.token_urlsafe(32), time.time() + SESSION_S)
        return token

    def sign_out(self, token: str) -> None:
        self.sessions.pop(token, None)

    def session(self, token: str) -> Session | None:
        session = self.sessions.get(token) if token else None
        if session is None or session.expires < time.time():
            return None
        return session


@dataclass
class ConsoleServer:
    url: str
    users: dict[str, tuple[str, str]]  # user -> (password, role)
    store: ReviewStore
    _httpd: _Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def login_line(self) -> str:
        return ", ".join(f"{user} / {password} ({role})" for user, (password, role) in self.users.items())

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def development_users() -> dict[str, tuple[str, str]]:
    """One analyst and one lead with passwords made up at start (printed by the demo)."""
    return {"analyst": (secrets.token_urlsafe(9), "analyst"), "lead": (secrets.token_urlsafe(9), "lead")}


def serve(
    store: ReviewStore,
    *,
    port: int = 0,
    users: dict[str, tuple[str, str]] | None = None,
    refresh_s: float = 5.0,
    similar: Callable[[Case, list[Case]], list[tuple[Case, float]]] | None = None,
    summary: Callable[[], list[tuple[str, list[tuple[str, str]]]]] | None = None,
) -> ConsoleServer:
    """Start the console on 127.0.0.1 (`port` 0: any free port)."""
    users = users or development_users()
    for user, (_, role) in users.items():
        if role not in ROLES:
            raise ValueError(f"user {user}: role must be one of {', '.join(ROLES)}")
    httpd = _Server(("127.0.0.1", port), _Handler)
    httpd.store = store
    httpd.cache = CaseCache(store, refresh_s)
    httpd.users = users
    httpd.sessions = {}
    httpd.login_hint = "Local development login: the users and passwords printed when the console started."
    httpd.app = ConsoleApp(
        store,
        cases=httpd.cache.all,
        remember=httpd.cache.put,
        similar=similar or (lambda case, cases: []),
        summary=(lambda cases: summary()) if summary else None,
    )
    thread = threading.Thread(target=httpd.serve_forever, name="console", daemon=True)
    thread.start()
    return ConsoleServer(f"http://127.0.0.1:{httpd.server_address[1]}", users, store, httpd, thread)


def serve_local(stack: Any, raw: str | Path, *, port: int = 0, **options: Any) -> ConsoleServer:
    """The console over a local stack's decision and audit tables, writing labels into the lake at `raw`."""
    from local.embeddings import SimilarCases
    from returnguard.aws.reviews import FileLabelSink

    names = stack.table_names
    store = ReviewStore(
        stack.client("dynamodb"), names["decisions"], names["audit"], FileLabelSink(raw), names.get("flagged")
    )
    options.setdefault("similar", SimilarCases())
    return serve(store, port=port, **options)
