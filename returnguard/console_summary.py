"""The team lead's daily summary as plain text: the template, the facts Bedrock may rewrite it from, and
the check its answer must pass before it replaces the template (returnguard/aws/daily_summary.py).

The facts are the summary's sections only: counts, rates, rule names, actions, risk levels and reason
codes. No customer-written text goes in, so there is nothing for a prompt injection to ride on. The
answer is refused (and the template sent instead) when it is empty, longer than MAX_SUMMARY_CHARS, has
markup or a link, or states a number that is not among the facts' numbers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

Sections = Sequence[tuple[str, Sequence[tuple[str, str]]]]

MAX_SUMMARY_CHARS = 2_500
MAX_TOKENS = 700  # about 2,500 characters of English
SYSTEM_PROMPT = (
    "You write the daily summary of an e-commerce trust and safety team's review queue for the team "
    "lead. Use only the facts given: every number you write must appear in them, and invent no rule, "
    "action or reason. Say what stands out first: the waiting cases, the rules and model bands with the "
    "highest confirmed-abuse rate, the reasons that rose. Plain text in short paragraphs, no markup, no "
    "links, at most 250 words."
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_MARKUP = re.compile(r"[<>]|https?:|www\.|\]\(|```", re.IGNORECASE)


def summary_text(sections: Sections, day: datetime) -> str:
    """The template: a title, then each section's heading and its `name: value` lines."""
    lines = [f"ReturnGuard review summary for {day:%Y-%m-%d}"]
    for heading, rows in sections:
        lines += ["", heading]
        lines += [f"- {name}: {value}" for name, value in rows] or ["- none"]
    return "\n".join(lines)


def facts_text(sections: Sections, day: datetime) -> str:
    """What the model is given: the template's own text, as facts to summarise."""
    return "Facts for the summary (the only numbers you may use):\n\n" + summary_text(sections, day)


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "").rstrip(".") for n in _NUMBER.findall(text)}


def check_summary(text: str, sections: Sections, day: datetime) -> str | None:
    """Why a written summary may not be sent (`empty`, `too_long`, `markup`, `invented_number`), or None."""
    if not text.strip():
        return "empty"
    if len(text) > MAX_SUMMARY_CHARS:
        return "too_long"
    if _MARKUP.search(text):
        return "markup"
    if _numbers(text) - _numbers(facts_text(sections, day)):
        return "invented_number"
    return None
