"""The trust & safety console's domain: which decisions wait for a person, the queue's filters, sort and
paging, analyst verdicts and the label each one becomes, and the SHAP waterfall as an SVG picture.

Pure Python: the DynamoDB adapter (returnguard/aws/reviews.py) hands in plain decision records and the
HTTP front end (local/console_server.py) renders what comes out (returnguard/console_pages.py).
Every lane (orders, returns, payments, batch rows) writes its decisions through the decision store, so
the queue reads only what all of them share: decision_id, customer_id, created_at, risk_level and the
response's recommended_action, plus what is there when a lane has it (request, contributions).
"""

from __future__ import annotations

import html
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

# Actions a person has to follow up. A lane may add its own: any action naming a review, a proof, a
# verification or a step-up waits for a person too (see `needs_person`).
REVIEW_ACTIONS = frozenset(
    # deny_refund: a return's hard rule denied the refund; a person confirms before money is withheld
    {"manual_review", "otp_verification", "step_up", "photo_proof", "hold_for_review", "deny_refund"}
)
_REVIEW_WORDS = ("review", "proof", "verification", "step_up", "hold")

# verdict -> label (None: no label, the case stays open for more information)
VERDICTS: dict[str, int | None] = {"confirmed_abuse": 1, "legitimate": 0, "need_more_info": None}
VERDICT_TITLES = {
    "confirmed_abuse": "Confirmed abuse",
    "legitimate": "Legitimate",
    "need_more_info": "Need more information",
}
OPEN_STATUSES = ("open", "need_more_info")
STATUSES = ("open", "need_more_info", "confirmed_abuse", "legitimate", "all")
LEVELS = ("low", "medium", "high", "critical")
SORTS = ("created_at", "risk_score", "amount", "risk_level")
MAX_NOTE = 2000
MAX_PAGE_SIZE = 200
ANALYST_LABEL = "analyst_verdict"  # abuse_type of a label row written from a confirmed-abuse verdict


class ConsoleError(Exception):
    """A request the console refuses; `code` is stable, `status` the HTTP status it maps to."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.field = status, code, field


def needs_person(action: str, flagged: bool = False) -> bool:
    return flagged or action in REVIEW_ACTIONS or any(word in action for word in _REVIEW_WORDS)


@dataclass(frozen=True)
class Case:
    """One decision as the console sees it."""

    decision_id: str
    lane: str
    order_id: str
    customer_id: str
    created_at: datetime
    risk_level: str
    risk_score: float | None
    action: str
    rules: tuple[str, ...]
    model_version: str
    amount: float | None
    currency: str
    region: str
    flagged: bool = False
    status: str = "open"  # open, need_more_info, confirmed_abuse, legitimate
    reviewed_by: str = ""
    reviewed_at: str = ""
    response: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    request: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    contributions: Mapping[str, float] = field(default_factory=dict, compare=False, repr=False)

    @property
    def waiting(self) -> bool:
        return self.status in OPEN_STATUSES and needs_person(self.action, self.flagged)

    def age_seconds(self, now: datetime) -> float:
        return max(0.0, (now - self.created_at).total_seconds())


def _json(value: Any, default: Any) -> Any:
    if isinstance(value, (dict, list)):
        return value
    if not value:
        return default
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return default


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _time(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return datetime.fromtimestamp(0, timezone.utc)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def case_from_record(record: Mapping[str, Any]) -> Case:
    """A Case from a decision record ({attribute: plain value}); tolerant of lanes that store less."""
    response = _json(record.get("response"), {})
    request = _json(record.get("request"), {})
    order = request.get("order") or request.get("return") or request.get("payment") or {}
    lane = str(
        record.get("lane")
        or record.get("event_type")
        or request.get("event_type")
        or response.get("event_type")
        or "order"
    )
    action = str(response.get("recommended_action") or record.get("action") or "")
    return Case(
        decision_id=str(record["decision_id"]),
        lane=lane,
        order_id=str(response.get("order_id") or order.get("order_id") or record.get("order_id") or ""),
        customer_id=str(record.get("customer_id") or order.get("customer_id") or ""),
        created_at=_time(record.get("created_at") or response.get("timestamp")),
        risk_level=str(record.get("risk_level") or response.get("risk_level") or ""),
        risk_score=_number(response.get("risk_score", record.get("risk_score"))),
        action=action,
        rules=tuple(str(r) for r in response.get("rules_triggered") or ()),
        model_version=str(response.get("model_version") or record.get("model_version") or ""),
        amount=_number(order.get("amount", order.get("refund_amount", record.get("amount")))),
        currency=str(order.get("currency") or record.get("currency") or ""),
        region=str(order.get("region") or record.get("region") or ""),
        # a lane may say itself that a person must look (the return lane's review_required)
        flagged=bool(record.get("flagged") or response.get("review_required")),
        status=str(record.get("review_status") or "open"),
        reviewed_by=str(record.get("reviewed_by") or ""),
        reviewed_at=str(record.get("reviewed_at") or ""),
        response=response,
        request=request,
        contributions={k: float(v) for k, v in _json(record.get("contributions"), {}).items()},
    )


@dataclass(frozen=True)
class QueueQuery:
    lane: str = ""
    level: str = ""
    action: str = ""
    region: str = ""
    model_version: str = ""
    status: str = "open"
    min_age_hours: float | None = None
    max_age_hours: float | None = None
    min_amount: float | None = None
    max_amount: float | None = None
    sort: str = "created_at"
    descending: bool = False  # oldest first: the queue is worked from the longest wait
    page: int = 1
    page_size: int = 50

    def with_page(self, page: int) -> QueueQuery:
        return replace(self, page=page)

    def as_params(self) -> dict[str, str]:
        """The query string that gives this query back (defaults left out)."""
        params: dict[str, str] = {}
        for name, default in QueueQuery.__dataclass_fields__.items():
            value = getattr(self, name)
            if value != default.default:
                params[name] = ("1" if value else "0") if isinstance(value, bool) else _plain(value)
        return params


def _plain(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def parse_query(params: Mapping[str, str]) -> QueueQuery:
    """The queue's query string -> QueueQuery; ConsoleError(400) naming the first bad parameter."""
    known = set(QueueQuery.__dataclass_fields__)
    for name in params:
        if name not in known:
            raise ConsoleError(400, "unknown_parameter", f"unknown query parameter {name!r}", name)
    values: dict[str, Any] = {}
    for name in ("lane", "level", "action", "region", "model_version", "status", "sort"):
        if params.get(name):
            value = params[name].strip()
            if len(value) > 64:
                raise ConsoleError(400, "invalid_parameter", f"{name} is longer than 64 characters", name)
            values[name] = value
    if values.get("level") and values["level"] not in LEVELS:
        raise ConsoleError(400, "invalid_parameter", f"level must be one of {', '.join(LEVELS)}", "level")
    if values.get("status") and values["status"] not in STATUSES:
        raise ConsoleError(400, "invalid_parameter", f"status must be one of {', '.join(STATUSES)}", "status")
    if values.get("sort") and values["sort"] not in SORTS:
        raise ConsoleError(400, "invalid_parameter", f"sort must be one of {', '.join(SORTS)}", "sort")
    for name in ("min_age_hours", "max_age_hours", "min_amount", "max_amount"):
        if params.get(name, "").strip():
            number = _number(params[name])
            if number is None or number < 0:
                raise ConsoleError(400, "invalid_parameter", f"{name} must be a number >= 0", name)
            values[name] = number
    if params.get("descending"):
        if params["descending"] not in ("0", "1"):
            raise ConsoleError(400, "invalid_parameter", "descending must be 0 or 1", "descending")
        values["descending"] = params["descending"] == "1"
    for name, high in (("page", 1_000_000), ("page_size", MAX_PAGE_SIZE)):
        if params.get(name):
            try:
                number = int(params[name])
            except ValueError:
                number = 0
            if not 1 <= number <= high:
                raise ConsoleError(400, "invalid_parameter", f"{name} must be a whole number 1..{high}", name)
            values[name] = number
    return QueueQuery(**values)


@dataclass(frozen=True)
class QueuePage:
    cases: list[Case]
    total: int  # cases matching the filters
    waiting: int  # cases waiting for a person, before filters
    oldest_age_s: float | None  # the longest wait among them
    by_lane: dict[str, int]
    by_level: dict[str, int]
    by_action: dict[str, int]
    page: int
    pages: int
    query: QueueQuery


def _matches(case: Case, query: QueueQuery, now: datetime) -> bool:
    if query.status == "all":
        if not needs_person(case.action, case.flagged):
            return False
    elif case.status != query.status or not needs_person(case.action, case.flagged):
        return False
    age_h = case.age_seconds(now) / 3600
    amount = case.amount
    return (
        (not query.lane or case.lane == query.lane)
        and (not query.level or case.risk_level == query.level)
        and (not query.action or case.action == query.action)
        and (not query.region or case.region == query.region)
        and (not query.model_version or case.model_version == query.model_version)
        and (query.min_age_hours is None or age_h >= query.min_age_hours)
        and (query.max_age_hours is None or age_h <= query.max_age_hours)
        and (query.min_amount is None or (amount is not None and amount >= query.min_amount))
        and (query.max_amount is None or (amount is not None and amount <= query.max_amount))
    )


def _sort_key(sort: str) -> Any:
    if sort == "risk_score":
        return lambda c: (c.risk_score if c.risk_score is not None else -1.0, c.decision_id)
    if sort == "amount":
        return lambda c: (c.amount if c.amount is not None else -1.0, c.decision_id)
    if sort == "risk_level":
        return lambda c: (LEVELS.index(c.risk_level) if c.risk_level in LEVELS else -1, c.created_at)
    return lambda c: (c.created_at, c.decision_id)


def queue_statuses(query: QueueQuery) -> tuple[str, ...]:
    """The review statuses a queue page reads: the waiting ones (its counts and oldest age) and the one
    its status filter asks for (every status for `all`)."""
    wanted = STATUSES[:-1] if query.status == "all" else (query.status,)
    return tuple(dict.fromkeys((*OPEN_STATUSES, *wanted)))


def select(cases: Iterable[Case], query: QueueQuery, now: datetime) -> QueuePage:
    """Filter, count, sort and page the queue."""
    everything = list(cases)
    waiting = [c for c in everything if c.waiting]
    matched = sorted(
        (c for c in everything if _matches(c, query, now)),
        key=_sort_key(query.sort),
        reverse=query.descending,
    )
    pages = max(1, math.ceil(len(matched) / query.page_size))
    start = (min(query.page, pages) - 1) * query.page_size
    return QueuePage(
        cases=matched[start : start + query.page_size],
        total=len(matched),
        waiting=len(waiting),
        oldest_age_s=max((c.age_seconds(now) for c in waiting), default=None),
        by_lane=dict(Counter(c.lane for c in waiting).most_common()),
        by_level={level: n for level in LEVELS if (n := sum(c.risk_level == level for c in waiting))},
        by_action=dict(Counter(c.action for c in waiting).most_common()),
        page=min(query.page, pages),
        pages=pages,
        query=query,
    )


@dataclass(frozen=True)
class Verdict:
    decision_id: str
    verdict: str
    note: str
    reviewer: str
    role: str
    recorded_at: datetime
    reviewer_sub: str = ""  # the reviewer's immutable id (Cognito's `sub`), beside the user name

    @property
    def label(self) -> int | None:
        return VERDICTS[self.verdict]


def make_verdict(
    decision_id: str, verdict: str, note: str, reviewer: str, role: str, now: datetime, subject: str = ""
) -> Verdict:
    if verdict not in VERDICTS:
        raise ConsoleError(422, "invalid_verdict", f"verdict must be one of {', '.join(VERDICTS)}", "verdict")
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise ConsoleError(422, "note_too_long", f"the note is longer than {MAX_NOTE} characters", "note")
    if verdict == "need_more_info" and not note:
        raise ConsoleError(422, "note_required", "say what information is missing", "note")
    if not reviewer:
        raise ConsoleError(401, "not_signed_in", "sign in to record a verdict")
    return Verdict(decision_id, verdict, note, reviewer, role, now.astimezone(timezone.utc), subject)


def check_can_decide(case: Case, verdict: Verdict) -> None:
    """A final verdict is final: a second one is a conflict (HTTP 409), never a silent overwrite."""
    if case.status not in OPEN_STATUSES:
        raise ConsoleError(
            409,
            "already_decided",
            f"this case was already decided ({case.status}) by {case.reviewed_by} at {case.reviewed_at}",
        )


def label_row(case: Case, verdict: Verdict) -> dict[str, Any] | None:
    """The label a verdict becomes, in the lake's raw/labels schema (docs/data.md); None: no label."""
    if verdict.label is None or not case.order_id or case.lane == "batch":
        # a batch row's labels belong to the labelled files that lane trains on (docs/payments.md),
        # not to the order lake's raw/labels: its verdict is recorded and audited, no label is written
        return None
    return {
        "order_id": case.order_id,
        "is_abuse": int(verdict.label),
        "abuse_type": ANALYST_LABEL if verdict.label else "none",
        "labeled_at": verdict.recorded_at,
    }


def base_value(score: float | None, contributions: Mapping[str, float]) -> float | None:
    """The model's expected margin: logit(score) minus the sum of the contributions (TreeSHAP adds up)."""
    if score is None or not 0.0 < score < 1.0:
        return None
    return math.log(score / (1.0 - score)) - sum(contributions.values())


def waterfall_svg(score: float | None, contributions: Mapping[str, float], top: int = 10) -> str:
    """The SHAP waterfall as an SVG document: from the model's base margin, each feature's push up
    (red) or down (green), the `top` largest by size, the rest summed in one bar, ending at the score.
    Feature names are escaped; the picture has no script and no links."""
    width, row, left, right = 720, 26, 260, 70
    items = sorted(contributions.items(), key=lambda kv: -abs(kv[1]))
    shown = list(items[:top])
    rest = sum(v for _, v in items[top:])
    if len(items) > top:
        shown.append((f"{len(items) - top} other features", rest))
    base = base_value(score, contributions)
    if base is None or not shown:
        text = (
            "no contributions recorded for this decision"
            if not shown
            else "no model score (degraded decision)"
        )
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="40" role="img">'
            f'<text x="10" y="25" font-family="sans-serif" font-size="14">{html.escape(text)}</text></svg>'
        )
    positions = [base]
    for _, value in shown:
        positions.append(positions[-1] + value)
    low, high = min(positions), max(positions)
    span = (high - low) or 1.0
    scale = (width - left - right) / span

    def x(v: float) -> float:
        return left + (v - low) * scale

    height = row * (len(shown) + 3)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" font-family="sans-serif" font-size="12">',
        f"<title>{html.escape('SHAP waterfall: how each feature moved the score')}</title>",
        f'<text x="8" y="{row - 8}">base (log-odds) {base:+.3f}</text>',
    ]
    for i, (name, value) in enumerate(shown, start=1):
        start, end = positions[i - 1], positions[i]
        y = row * i
        colour = "#c0392b" if value > 0 else "#1e8449"
        parts.append(f'<text x="8" y="{y + 17}">{html.escape(name[:40])}</text>')
        parts.append(
            f'<rect x="{min(x(start), x(end)):.1f}" y="{y + 4}" width="{max(1.0, abs(x(end) - x(start))):.1f}" '
            f'height="{row - 8}" fill="{colour}"/>'
        )
        parts.append(f'<text x="{max(x(start), x(end)) + 4:.1f}" y="{y + 17}">{value:+.3f}</text>')
    y = row * (len(shown) + 1)
    final = positions[-1]
    parts.append(f'<line x1="{x(final):.1f}" y1="{row}" x2="{x(final):.1f}" y2="{y + 4}" stroke="#333"/>')
    parts.append(
        f'<text x="8" y="{y + 20}">score {1 / (1 + math.exp(-final)):.3f} (log-odds {final:+.3f})</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def customer_text_fields(request: Mapping[str, Any]) -> Sequence[tuple[str, str]]:
    """The request's fields as (path, text) pairs for the case view, nested objects flattened."""
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key in sorted(value):
                walk(f"{prefix}.{key}" if prefix else str(key), value[key])
        else:
            rows.append((prefix, value if isinstance(value, str) else json.dumps(value)))

    walk("", request)
    return rows


def daily_summary(
    cases: Iterable[Case], now: datetime, hours: float = 24.0, population: str = "decisions"
) -> list[tuple[str, list[tuple[str, str]]]]:
    """The lead's summary of the last `hours` (the template; Bedrock rewrites it in AWS when enabled):
    volumes, actions, verdicts, and the confirmed-abuse rate per rule and per model band among the
    cases decided so far. `population` names what `cases` are (in AWS: the decisions that needed a
    person, from the review index)."""
    cases = list(cases)
    recent = [c for c in cases if c.age_seconds(now) <= hours * 3600]
    decided = [c for c in recent if c.status in ("confirmed_abuse", "legitimate")]
    waiting = [c for c in recent if c.waiting]

    def rate(group: list[Case]) -> str:
        abuse = sum(c.status == "confirmed_abuse" for c in group)
        return f"{abuse} of {len(group)} ({100 * abuse / len(group):.0f}%)" if group else "-"

    by_rule: dict[str, list[Case]] = {}
    for c in decided:
        for rule in c.rules or ("(no rule)",):
            by_rule.setdefault(rule, []).append(c)
    by_level = {level: [c for c in decided if c.risk_level == level] for level in LEVELS}
    return [
        (
            f"Volumes (last {hours:g} h)",
            [
                (population, str(len(recent))),
                ("waiting for a person", str(len(waiting))),
                ("decided by analysts", str(len(decided))),
                ("need more information", str(sum(c.status == "need_more_info" for c in recent))),
            ],
        ),
        ("Actions", [(action, str(n)) for action, n in Counter(c.action for c in recent).most_common()]),
        ("Confirmed-abuse rate per rule", [(rule, rate(group)) for rule, group in sorted(by_rule.items())]),
        ("Confirmed-abuse rate per model band", [(level, rate(g)) for level, g in by_level.items() if g]),
        (
            "Return reasons rising (last day against the daily mean of the 7 days before)",
            rising_reasons(cases, now),
        ),
    ]


def rising_reasons(cases: Iterable[Case], now: datetime, top: int = 5) -> list[tuple[str, str]]:
    """Return reason codes of the last 24 h against their daily mean over the 7 days before, the
    largest rises first (a template's stand-in for the emerging clusters Bedrock summarises in AWS)."""
    recent: Counter[str] = Counter()
    before: Counter[str] = Counter()
    for case in cases:
        code = (case.request.get("return") or {}).get("reason_code")
        if not code:
            continue
        age_h = case.age_seconds(now) / 3600
        if age_h <= 24:
            recent[str(code)] += 1
        elif age_h <= 24 * 8:
            before[str(code)] += 1
    rises = sorted(recent, key=lambda code: (-(recent[code] - before[code] / 7), code))[:top]
    return [(code, f"{recent[code]} (7-day daily mean {before[code] / 7:.1f})") for code in rises]


def case_text(case: Case) -> str:
    """What a case is about, as one English text for embeddings: lane, action, rules, the explanation's
    factors and, for a return, the reason code and the customer's own words (untrusted: only embedded,
    never executed or shown unescaped)."""
    explanation = case.response.get("explanation") or {}
    subject = case.request.get("return") or case.request.get("order") or {}
    parts = [
        f"{case.lane} {case.action.replace('_', ' ')}",
        "rules: " + ", ".join(r.replace("_", " ") for r in case.rules) if case.rules else "",
        ". ".join(str(f) for f in explanation.get("key_factors") or []),
        f"reason: {str(subject.get('reason_code', '')).replace('_', ' ')} {subject.get('reason') or ''}".strip()
        if subject.get("reason_code") or subject.get("reason")
        else "",
    ]
    return ". ".join(p for p in parts if p)[:2000]
