"""The leads' daily summary: the template text, Bedrock's rewrite on a real bedrock-runtime client driven
by botocore's Stubber (moto has no Converse), the check that refuses an answer, and the fallback."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from returnguard.aws.daily_summary import SummaryWriter
from returnguard.console import case_from_record, daily_summary
from returnguard.console_summary import MAX_SUMMARY_CHARS, SYSTEM_PROMPT, check_summary, summary_text
from returnguard.narrative import bedrock_config

NOW = datetime(2026, 11, 30, 3, 30, tzinfo=timezone.utc)
MODEL = "apac.amazon.nova-lite-v1:0"


def _case(n: int, action: str, status: str | None, rules: list[str], level: str = "high"):
    record: dict[str, Any] = {
        "decision_id": f"d-{n}",
        "customer_id": f"C{n}",
        "created_at": (NOW - timedelta(hours=2 + n)).isoformat(),
        "risk_level": level,
        "response": {"recommended_action": action, "risk_score": 0.8, "rules_triggered": rules},
    }
    if status:
        record["review_status"] = status
    return case_from_record(record)


SECTIONS = daily_summary(
    [
        _case(1, "manual_review", "confirmed_abuse", ["high_return_rate"]),
        _case(2, "manual_review", "confirmed_abuse", ["high_return_rate"]),
        _case(3, "manual_review", "legitimate", ["new_account_high_value"], level="medium"),
        _case(4, "photo_proof", None, []),
    ],
    NOW,
    population="decisions that needed a person",
)
FAITHFUL = (
    "4 decisions needed a person in the last 24 h; 1 is still waiting. high_return_rate was confirmed "
    "abuse in 2 of 2 cases (100%), new_account_high_value in 0 of 1."
)


def converse_reply(text: str, stop: str = "end_turn") -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": stop,
        "usage": {"inputTokens": 300, "outputTokens": 60, "totalTokens": 360},
        "metrics": {"latencyMs": 900},
    }


@pytest.fixture
def client() -> Any:
    return boto3.client("bedrock-runtime", region_name="us-east-1", config=bedrock_config(20.0))


def test_the_template_lists_every_section_and_value():
    text = summary_text(SECTIONS, NOW)
    assert text.startswith("ReturnGuard review summary for 2026-11-30")
    assert "- decisions that needed a person: 4" in text
    assert "- high_return_rate: 2 of 2 (100%)" in text
    assert "- waiting for a person: 1" in text


def test_a_faithful_rewrite_is_sent_and_the_prompt_carries_the_facts(client):
    with Stubber(client) as stub:
        stub.add_response(
            "converse",
            converse_reply(FAITHFUL),
            {
                "modelId": MODEL,
                "system": [{"text": SYSTEM_PROMPT}],
                "messages": ANY,
                "inferenceConfig": ANY,
            },
        )
        written = SummaryWriter(client, MODEL).write(SECTIONS, NOW)
        stub.assert_no_pending_responses()
    assert (written.text, written.source) == (FAITHFUL, "bedrock")


@pytest.mark.parametrize(
    ("answer", "stop", "why"),
    [
        (FAITHFUL.replace("2 of 2", "7 of 9"), "end_turn", "invented_number"),  # a number not in the facts
        (FAITHFUL + ' <img src=x onerror="alert(1)">', "end_turn", "markup"),
        (FAITHFUL + " Details: https://evil.example/", "end_turn", "markup"),
        ("x " * MAX_SUMMARY_CHARS, "end_turn", "too_long"),
        ("   ", "end_turn", "empty"),
        (FAITHFUL, "max_tokens", "max_tokens"),
        (FAITHFUL, "guardrail_intervened", "guardrail_intervened"),
    ],
)
def test_an_answer_that_fails_the_check_sends_the_template_and_says_why(client, answer, stop, why):
    with Stubber(client) as stub:
        stub.add_response("converse", converse_reply(answer, stop))
        written = SummaryWriter(client, MODEL).write(SECTIONS, NOW)
    assert written.text == summary_text(SECTIONS, NOW)
    assert written.source == f"template ({why})"


@pytest.mark.parametrize("code", ["ThrottlingException", "AccessDeniedException", "ModelTimeoutException"])
def test_a_bedrock_error_sends_the_template(client, code):
    with Stubber(client) as stub:
        stub.add_client_error("converse", service_error_code=code, http_status_code=400)
        written = SummaryWriter(client, MODEL).write(SECTIONS, NOW)
    assert (written.text, written.source) == (summary_text(SECTIONS, NOW), f"template ({code})")


def test_without_a_model_bedrock_is_never_called(client):
    with Stubber(client):  # no response queued: any call would raise
        written = SummaryWriter(client, "").write(SECTIONS, NOW)
    assert written.source == "template (off)"


def test_numbers_of_the_facts_may_be_restated_in_any_order():
    assert check_summary("100% of 2 high_return_rate cases; 1 waiting; 4 in all.", SECTIONS, NOW) is None
    assert check_summary("8 cases are waiting.", SECTIONS, NOW) == "invented_number"
