"""The review console's pages and verdicts, whatever carries the request: one code path for the local
server (local/console_server.py, a session cookie) and the Lambda function behind API Gateway
(lambdas/console/handler.py, a Cognito token).

The transport signs the person in and hands over an `Identity` (user, role, CSRF token); this module
answers GET and POST with a `Response` (status, body, content type, headers). The role decides what the
person may see: the daily summary is for leads only (403 `forbidden` for an analyst).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote, unquote

from returnguard import console_pages as pages
from returnguard.aws.reviews import ReviewStore
from returnguard.console import (
    Case,
    ConsoleError,
    QueueQuery,
    daily_summary,
    make_verdict,
    parse_query,
    select,
    waterfall_svg,
)
from returnguard.console_summary import Sections

STATIC = Path(__file__).resolve().parent.parent / "console_static"
STATIC_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
ROLES = ("analyst", "lead")
HTML = "text/html; charset=utf-8"


@dataclass(frozen=True)
class Identity:
    """`subject`: the person's immutable id (the Cognito token's `sub`; `local:<user>` locally), which
    every verdict records next to the user name."""

    user: str
    role: str
    csrf: str
    subject: str = ""


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)
    cookies: list[str] = field(default_factory=list)  # Set-Cookie values


def role_of(groups: Iterable[str]) -> str | None:
    """The console role of a person in these groups: `lead` over `analyst`; None when in neither."""
    names = set(groups)
    return next((role for role in reversed(ROLES) if role in names), None)


def linked_accounts(case: Case, cases: list[Case]) -> list[tuple[str, str, str]]:
    """Other customers whose stored requests share this one's delivery address or card."""
    order = case.request.get("order") or {}
    wanted = {
        kind: order.get(kind)
        for kind in ("delivery_address", "card_fingerprint", "device_id")
        if order.get(kind)
    }
    found: dict[tuple[str, str], str] = {}
    for other in cases:
        if other.customer_id == case.customer_id:
            continue
        other_order = other.request.get("order") or {}
        for kind, value in wanted.items():
            if other_order.get(kind) == value:
                found[(other.customer_id, kind)] = str(value)
    return [(customer, kind, value) for (customer, kind), value in sorted(found.items())]


def html(status: int, text: str, headers: Mapping[str, str] | None = None) -> Response:
    return Response(status, text.encode("utf-8"), HTML, dict(headers or {}))


def redirect(location: str) -> Response:
    return Response(303, b"", "text/plain; charset=utf-8", {"Location": location})


def error_response(error: ConsoleError, identity: Identity | None) -> Response:
    text = pages.error_page(
        error.status,
        error.code,
        str(error),
        identity.user if identity else "",
        identity.role if identity else "",
        identity.csrf if identity else "",
    )
    return html(error.status, text, {"X-Error-Code": error.code})


def static(name: str) -> Response:
    path = STATIC / name
    if "/" in name or name.startswith(".") or path.suffix not in STATIC_TYPES or not path.is_file():
        raise ConsoleError(404, "not_found", "no such asset")
    return Response(200, path.read_bytes(), STATIC_TYPES[path.suffix], {"Cache-Control": "max-age=300"})


@dataclass
class ConsoleApp:
    """`cases`: every case (a cached snapshot locally; in Lambda the cases that needed a person, from the
            sparse review index); `queue`: the cases a queue page needs (default: `cases()`; in Lambda only the
            index's partitions for `queue_statuses(query)`); `remember`: told of a case a verdict changed (the
            local cache), `similar` and `summary`: as `local.console_server.serve`; `write`: the summary's sections
        as prose and who wrote it (in Lambda: Bedrock through `returnguard.aws.daily_summary.SummaryWriter`, the
        daily e-mail's code path, with its template fallback); None: the facts only. `clusters`: the latest
    reason-clusters report (HTML our code wrote, every customer text escaped there; in Lambda the scheduled
    clusters function's, from the lake), None when there is none yet."""

    store: ReviewStore
    cases: Callable[[], list[Case]]
    remember: Callable[[Case], None] = lambda case: None
    similar: Callable[[Case, list[Case]], list[tuple[Case, float]]] = lambda case, cases: []
    summary: Callable[[list[Case]], list[tuple[str, list[tuple[str, str]]]]] | None = None
    queue: Callable[[QueueQuery], list[Case]] | None = None
    write: Callable[[Sections], tuple[str, str]] | None = None
    clusters: Callable[[], str | None] | None = None

    def public(self, path: str) -> Response | None:
        """What needs no sign-in: the assets and the health check; None for every other path."""
        if path.startswith("/static/"):
            return static(path.removeprefix("/static/"))
        if path == "/favicon.ico":
            raise ConsoleError(404, "not_found", "no icon")
        if path == "/health":
            return Response(200, b'{"status":"ok"}', "application/json")
        return None

    def get(self, path: str, params: Mapping[str, str], who: Identity) -> Response:
        if who.role not in ROLES:
            raise ConsoleError(403, "forbidden", "you are in neither the analyst nor the lead group")
        if path == "/":
            return self._queue(who, params)
        if path == "/summary":
            if who.role != "lead":
                raise ConsoleError(403, "forbidden", "the daily summary is for leads")
            cases = self.cases()
            sections = (
                self.summary(cases) if self.summary else daily_summary(cases, datetime.now(timezone.utc))
            )
            written = self.write(sections) if self.write else None
            return html(200, pages.summary_page(sections, who.user, who.role, who.csrf, written))
        if path == "/clusters":
            if who.role != "lead":
                raise ConsoleError(403, "forbidden", "the reason clusters are for leads")
            report = self.clusters() if self.clusters else None
            return html(200, pages.clusters_page(report, who.user, who.role, who.csrf))
        parts = [unquote(p) for p in path.split("/")[1:]]
        if len(parts) == 2 and parts[0] == "cases":
            return self._case(who, parts[1])
        if len(parts) == 3 and parts[0] == "cases" and parts[2] == "waterfall.svg":
            case = self._find(parts[1])
            svg = waterfall_svg(case.risk_score, case.contributions)
            return Response(200, svg.encode("utf-8"), "image/svg+xml; charset=utf-8")
        raise ConsoleError(404, "not_found", "no such page")

    def post(self, path: str, form: Mapping[str, str], who: Identity) -> Response:
        """A signed-in person's form (the transport handles sign-in and sign-out): CSRF first."""
        if not who.csrf or not secrets.compare_digest(form.get("csrf", ""), who.csrf):
            raise ConsoleError(403, "csrf", "the form's CSRF token is missing or wrong: reload the page")
        if who.role not in ROLES:
            raise ConsoleError(403, "forbidden", "you are in neither the analyst nor the lead group")
        parts = [unquote(p) for p in path.split("/")[1:]]
        if len(parts) == 3 and parts[0] == "cases" and parts[2] == "verdict":
            case = self._find(parts[1])
            verdict = make_verdict(
                case.decision_id,
                form.get("verdict", ""),
                form.get("note", ""),
                who.user,
                who.role,
                datetime.now(timezone.utc),
                subject=who.subject,
            )
            self.store.record(case, verdict)
            updated = self.store.case(case.decision_id)
            if updated is not None:
                self.remember(updated)
            return redirect(f"/cases/{quote(case.decision_id, safe='')}")
        raise ConsoleError(404, "not_found", "no such form")

    def _find(self, decision_id: str) -> Case:
        case = self.store.case(decision_id) if 0 < len(decision_id) <= 256 else None
        if case is None:
            raise ConsoleError(404, "not_found", "no such decision")
        return case

    def _queue(self, who: Identity, params: Mapping[str, str]) -> Response:
        query = parse_query(dict(params))
        cases = self.queue(query) if self.queue else self.cases()
        now = datetime.now(timezone.utc)
        page = select(cases, query, now)
        lanes = sorted({c.lane for c in cases})
        actions = sorted({c.action for c in cases if c.waiting} | ({query.action} if query.action else set()))
        return html(200, pages.queue_page(page, now, lanes, actions, who.user, who.role, who.csrf))

    def _case(self, who: Identity, decision_id: str) -> Response:
        case = self._find(decision_id)
        cases = self.cases()
        timeline = [
            c for c in self.store.customer_cases(case.customer_id) if c.decision_id != case.decision_id
        ]
        text = pages.case_page(
            case,
            now=datetime.now(timezone.utc),
            features=self.store.features(case.decision_id),
            timeline=timeline,
            linked=linked_accounts(case, cases),
            trail=self.store.trail(case.decision_id),
            similar=self.similar(case, cases),
            user=who.user,
            role=who.role,
            csrf=who.csrf,
        )
        return html(200, text)
