"""The console's HTML pages. Every value that came from a request, a customer or a model goes through
`esc` (html.escape, quotes included): nothing a customer typed is ever markup. Pages carry no inline
script or style (the Content-Security-Policy forbids both); behaviour is in /static/console.js.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from returnguard.console import (
    LEVELS,
    SORTS,
    STATUSES,
    VERDICT_TITLES,
    Case,
    QueuePage,
    customer_text_fields,
)

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h {minutes % 60} min" if hours < 48 else f"{hours // 24} d {hours % 24} h"


def layout(title: str, body: str, user: str = "", role: str = "", csrf: str = "") -> str:
    nav = ""
    if user:
        lead = (
            '<a href="/summary">Daily summary</a><a href="/clusters">Reason clusters</a>'
            if role == "lead"
            else ""
        )
        nav = (
            f'<nav><a href="/">Queue</a>{lead}<span class="who">{esc(user)} ({esc(role)})</span>'
            f'<form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" '
            f'value="{esc(csrf)}"><button type="submit">Sign out</button></form></nav>'
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · ReturnGuard</title>"
        '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'
        '<link rel="stylesheet" href="/static/console.css"><script src="/static/console.js" defer></script>'
        f"</head><body><header><h1>ReturnGuard review console</h1>{nav}</header><main>{body}</main></body></html>"
    )


def login_page(csrf: str, error: str = "", hint: str = "") -> str:
    message = f'<p class="error" role="alert">{esc(error)}</p>' if error else ""
    note = f'<p class="hint">{esc(hint)}</p>' if hint else ""
    body = (
        f'<section class="login"><h2>Sign in</h2>{message}<form method="post" action="/login">'
        f'<input type="hidden" name="csrf" value="{esc(csrf)}">'
        '<label>User <input name="username" id="username" autocomplete="username" required></label>'
        '<label>Password <input name="password" id="password" type="password" autocomplete="current-password" '
        'required></label><button type="submit" id="sign-in">Sign in</button></form>'
        f"{note}</section>"
    )
    return layout("Sign in", body)


def error_page(status: int, code: str, message: str, user: str = "", role: str = "", csrf: str = "") -> str:
    body = f'<section class="error"><h2>{status}</h2><p><code>{esc(code)}</code> {esc(message)}</p></section>'
    return layout(f"Error {status}", body, user, role, csrf)


def _select(name: str, options: Iterable[str], current: str, blank: str = "any") -> str:
    rows = [f'<option value="">{esc(blank)}</option>'] if blank else []
    for option in options:
        selected = " selected" if option == current else ""
        rows.append(f'<option value="{esc(option)}"{selected}>{esc(option)}</option>')
    return f'<select name="{esc(name)}" id="f-{esc(name)}">{"".join(rows)}</select>'


def _number_input(name: str, value: float | None, label: str) -> str:
    shown = "" if value is None else (str(int(value)) if float(value).is_integer() else str(value))
    return (
        f'<label>{esc(label)} <input name="{esc(name)}" id="f-{esc(name)}" inputmode="decimal" size="6" '
        f'value="{esc(shown)}"></label>'
    )


def _counts(title: str, counts: Mapping[str, int]) -> str:
    items = "".join(f"<li>{esc(name or '-')} <b>{n}</b></li>" for name, n in counts.items())
    return f'<div class="counts"><h3>{esc(title)}</h3><ul>{items or "<li>none</li>"}</ul></div>'


def _page_link(page: QueuePage, number: int, text: str) -> str:
    params = page.query.with_page(number).as_params()
    return f'<a href="/?{esc(urlencode(params))}" class="page-link">{esc(text)}</a>'


def queue_page(
    page: QueuePage,
    now: datetime,
    lanes: Sequence[str],
    actions: Sequence[str],
    user: str,
    role: str,
    csrf: str,
) -> str:
    q = page.query
    summary = (
        f'<section class="summary" id="summary"><p><b id="waiting-count">{page.waiting}</b> waiting for a person; '
        f'oldest waiting <b id="oldest-age">{esc(age_text(page.oldest_age_s))}</b></p>'
        f"{_counts('By lane', page.by_lane)}{_counts('By level', page.by_level)}"
        f"{_counts('By action', page.by_action)}</section>"
    )
    filters = (
        '<form method="get" action="/" class="filters" id="filters">'
        f"<label>Lane {_select('lane', lanes, q.lane)}</label>"
        f"<label>Level {_select('level', LEVELS, q.level)}</label>"
        f"<label>Action {_select('action', actions, q.action)}</label>"
        f"<label>Status {_select('status', STATUSES, q.status, blank='')}</label>"
        f'<label>Region <input name="region" id="f-region" size="8" value="{esc(q.region)}"></label>'
        f'<label>Model <input name="model_version" id="f-model_version" size="10" value="{esc(q.model_version)}">'
        "</label>"
        f"{_number_input('min_age_hours', q.min_age_hours, 'Age ≥ h')}"
        f"{_number_input('max_age_hours', q.max_age_hours, 'Age ≤ h')}"
        f"{_number_input('min_amount', q.min_amount, 'Amount ≥')}"
        f"{_number_input('max_amount', q.max_amount, 'Amount ≤')}"
        f"<label>Sort {_select('sort', SORTS, q.sort, blank='')}</label>"
        f"<label>Descending {_select('descending', ('0', '1'), '1' if q.descending else '0', blank='')}</label>"
        '<button type="submit" id="apply-filters">Apply</button> <a href="/">Reset</a></form>'
    )
    rows = []
    for case in page.cases:
        score = "-" if case.risk_score is None else f"{case.risk_score:.3f}"
        amount = "-" if case.amount is None else f"{case.amount:,.2f} {case.currency}"
        rows.append(
            f'<tr data-href="/cases/{esc(quote(case.decision_id, safe=""))}">'
            f'<td><a href="/cases/{esc(quote(case.decision_id, safe=""))}" class="case-link">{esc(case.order_id)}</a></td>'
            f"<td>{esc(case.lane)}</td><td>{esc(case.customer_id)}</td>"
            f'<td class="level-{esc(case.risk_level)}">{esc(case.risk_level)}</td><td>{esc(score)}</td>'
            f"<td>{esc(case.action)}</td><td>{esc(amount)}</td><td>{esc(case.region)}</td>"
            f"<td>{esc(case.model_version)}</td><td>{esc(age_text(case.age_seconds(now)))}</td>"
            f"<td>{esc(case.status)}</td></tr>"
        )
    table = (
        f'<p id="match-count">{page.total} matching · page {page.page} of {page.pages}</p>'
        '<table class="queue" id="queue"><thead><tr><th>Order</th><th>Lane</th><th>Customer</th><th>Level</th>'
        "<th>Score</th><th>Action</th><th>Amount</th><th>Region</th><th>Model</th><th>Waiting</th><th>Status</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    pager = []
    if page.page > 1:
        pager.append(_page_link(page, page.page - 1, "← previous"))
    if page.page < page.pages:
        pager.append(_page_link(page, page.page + 1, "next →"))
    keys = '<p class="hint">Keys: j/k move, Enter opens the case.</p>'
    body = summary + filters + table + f'<p class="pager">{" ".join(pager)}</p>' + keys
    return layout("Queue", body, user, role, csrf)


def _table(rows: Iterable[tuple[str, str]], css: str) -> str:
    cells = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return f'<table class="{esc(css)}">{cells}</table>'


def _verdict_text(case: Case) -> str:
    """A similar case's outcome: the analyst's verdict, or what the engine did when no one reviewed it."""
    if case.status in ("confirmed_abuse", "legitimate", "need_more_info"):
        return case.status
    return f"{'waiting' if case.waiting else 'not reviewed'} ({case.action})"


def case_page(
    case: Case,
    *,
    now: datetime,
    features: Mapping[str, float],
    timeline: Sequence[Case],
    linked: Sequence[tuple[str, str, str]],
    trail: Sequence[Mapping[str, Any]],
    similar: Sequence[tuple[Case, float]],
    user: str,
    role: str,
    csrf: str,
) -> str:
    response = case.response
    explanation = response.get("explanation") or {}
    quoted = esc(quote(case.decision_id, safe=""))
    facts = [
        ("Decision", case.decision_id),
        ("Lane", case.lane),
        ("Order", case.order_id),
        ("Customer", case.customer_id),
        ("Risk score", "-" if case.risk_score is None else f"{case.risk_score:.3f}"),
        ("Level", case.risk_level),
        ("Action", case.action),
        ("Rules", ", ".join(case.rules) or "none"),
        ("Model", case.model_version),
        ("Decided", case.created_at.isoformat()),
        ("Waiting", age_text(case.age_seconds(now))),
        (
            "Status",
            case.status + (f" by {case.reviewed_by} at {case.reviewed_at}" if case.reviewed_by else ""),
        ),
    ]
    if response.get("degraded"):
        facts.append(("Degraded", str(response.get("degraded_reason") or "yes")))
    verdict = ""
    if case.waiting:
        buttons = "".join(
            f'<button type="submit" name="verdict" value="{esc(v)}" id="verdict-{esc(v)}" data-key="{esc(k)}">'
            f"{esc(title)} <kbd>{esc(k)}</kbd></button>"
            for (v, title), k in zip(VERDICT_TITLES.items(), ("a", "l", "m"), strict=True)
        )
        verdict = (
            f'<section class="verdict"><h2>Verdict</h2><form method="post" action="/cases/{quoted}/verdict" '
            f'id="verdict-form"><input type="hidden" name="csrf" value="{esc(csrf)}">'
            '<label>Note <textarea name="note" id="note" rows="3" maxlength="2000"></textarea></label>'
            f'<div class="buttons">{buttons}</div></form>'
            '<p class="hint">Keys: a confirmed abuse, l legitimate, m need more information (outside the note).</p>'
            "</section>"
        )
    factors = "".join(f"<li>{esc(f)}</li>" for f in explanation.get("key_factors") or [])
    narrative = (
        f'<p class="narrative">{esc(explanation.get("narrative"))}</p>'
        if explanation.get("narrative")
        else ""
    )
    explain = (
        f'<section><h2>Explanation</h2><p id="explanation-summary">{esc(explanation.get("summary"))}</p>'
        f"<ul>{factors}</ul><p>{esc(explanation.get('recommendation'))}</p>{narrative}"
        f'<p class="hint">source: {esc(explanation.get("source", "template"))}</p></section>'
    )
    waterfall = (
        f'<section><h2>Why this score (SHAP waterfall)</h2><img src="/cases/{quoted}/waterfall.svg" '
        'alt="SHAP waterfall of this decision" id="waterfall"></section>'
    )
    request = _table(customer_text_fields(case.request), "request") if case.request else "<p>not recorded</p>"
    vector = _table(((k, f"{v:g}") for k, v in sorted(features.items())), "features") if features else ""
    history = "".join(
        f'<tr><td><a href="/cases/{esc(quote(c.decision_id, safe=""))}">{esc(c.order_id)}</a></td>'
        f"<td>{esc(c.created_at.isoformat())}</td><td>{esc(c.lane)}</td><td>{esc(c.risk_level)}</td>"
        f"<td>{esc(c.action)}</td><td>{esc(c.status)}</td></tr>"
        for c in timeline
    )
    links = "".join(
        f"<tr><td>{esc(customer)}</td><td>{esc(kind)}</td><td>{esc(value)}</td></tr>"
        for customer, kind, value in linked
    )
    similar_rows = "".join(
        f'<tr><td><a href="/cases/{esc(quote(c.decision_id, safe=""))}">{esc(c.order_id)}</a></td>'
        f"<td>{similarity:.2f}</td><td>{esc(c.risk_level)}</td><td>{esc(_verdict_text(c))}</td></tr>"
        for c, similarity in similar
    )
    audit = "".join(
        f"<tr><td>{esc(item.get('recorded_at'))}</td><td>{esc(item.get('verdict') or item.get('action'))}</td>"
        f"<td>{esc(item.get('reviewer') or item.get('model_version'))}</td><td>{esc(item.get('note'))}</td></tr>"
        for item in trail
    )
    body = (
        f'<p><a href="/">← queue</a></p><h2 id="case-title">Case {esc(case.order_id)}</h2>'
        f'<div class="case-grid"><section><h2>Decision</h2>{_table(facts, "facts")}</section>{verdict}</div>'
        f"{explain}{waterfall}"
        f"<section><h2>Request</h2>{request}</section>"
        f'<section><h2>Customer timeline</h2><table id="timeline"><tr><th>Order</th><th>When</th><th>Lane</th>'
        f"<th>Level</th><th>Action</th><th>Status</th></tr>{history}</table></section>"
        f'<section><h2>Linked accounts</h2><table id="linked"><tr><th>Customer</th><th>Shares</th><th>Value</th></tr>'
        f"{links or '<tr><td colspan=3>none found among stored decisions</td></tr>'}</table></section>"
        f'<section><h2>Similar past cases</h2><table id="similar"><tr><th>Order</th><th>Similarity</th><th>Level</th>'
        f"<th>Verdict</th></tr>{similar_rows or '<tr><td colspan=4>none yet</td></tr>'}</table></section>"
        f'<section><h2>Audit trail</h2><table id="audit"><tr><th>Recorded</th><th>What</th><th>Who</th><th>Note</th>'
        f"</tr>{audit}</table></section>"
        f"<section><h2>Features</h2>{vector}</section>"
    )
    return layout(f"Case {case.order_id}", body, user, role, csrf)


def summary_page(
    text: Sequence[tuple[str, Sequence[tuple[str, str]]]],
    user: str,
    role: str,
    csrf: str,
    written: tuple[str, str] | None = None,
) -> str:
    """`written`: the summary as prose and who wrote it (`bedrock`, or `template (<why>)`), shown above
    the facts it was written from; plain text, escaped, one paragraph per blank-line block."""
    prose = ""
    if written is not None:
        summary, source = written
        paragraphs = "".join(
            f"<p>{esc(block.strip())}</p>" for block in summary.split("\n\n") if block.strip()
        )
        prose = (
            f'<section id="written-summary" class="written">{paragraphs}'
            f'<p class="hint" id="summary-source">Written by {esc(source)}; the numbers are the facts below.</p>'
            "</section>"
        )
    sections = "".join(
        f"<section><h2>{esc(title)}</h2>{_table(rows, 'facts')}</section>" for title, rows in text
    )
    return layout(
        "Daily summary", f'<h2 id="summary-title">Daily summary</h2>{prose}{sections}', user, role, csrf
    )


def clusters_page(report: str | None, user: str, role: str, csrf: str) -> str:
    """`report`: the clusters report's HTML as returnguard.reason_clusters wrote it (customer text escaped
    there); None: not computed yet."""
    body = report or (
        '<p class="hint">No reason clusters yet: in AWS a scheduled function computes them once a day; '
        "locally they are in make demo's HTML report.</p>"
    )
    return layout(
        "Reason clusters",
        f'<h2 id="clusters-title">Reason clusters</h2><section>{body}</section>',
        user,
        role,
        csrf,
    )
