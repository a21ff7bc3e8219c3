"""The daily summary for team leads in AWS: Bedrock (Converse) rewrites the template summary from its
facts, the answer is checked (returnguard/console_summary.py), and the result goes to the leads' SNS
topic. Any Bedrock error, a truncated or filtered answer, or an answer that fails the check sends the
template instead, and the message says which was sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from returnguard.console_summary import (
    MAX_TOKENS,
    SYSTEM_PROMPT,
    Sections,
    check_summary,
    facts_text,
    summary_text,
)


@dataclass(frozen=True)
class WrittenSummary:
    text: str
    source: str  # "bedrock", or "template" with why: "template (off)", "template (invented_number)", ...


class SummaryWriter:
    """`client`: a bedrock-runtime client; `model_id`: what Converse is called with (empty: template only)."""

    def __init__(self, client: Any, model_id: str):
        self._client, self._model_id = client, model_id

    def write(self, sections: Sections, day: datetime) -> WrittenSummary:
        template = summary_text(sections, day)
        if not self._model_id:
            return WrittenSummary(template, "template (off)")
        try:
            answer = self._client.converse(
                modelId=self._model_id,
                system=[{"text": SYSTEM_PROMPT}],
                messages=[{"role": "user", "content": [{"text": facts_text(sections, day)}]}],
                inferenceConfig={"maxTokens": MAX_TOKENS, "temperature": 0.2},
            )
        except ClientError as error:
            return WrittenSummary(
                template, f"template ({error.response.get('Error', {}).get('Code', 'error')})"
            )
        except BotoCoreError:
            return WrittenSummary(template, "template (error)")
        if answer.get("stopReason") != "end_turn":
            return WrittenSummary(template, f"template ({answer.get('stopReason')})")
        try:
            text = "".join(part.get("text", "") for part in answer["output"]["message"]["content"]).strip()
        except (KeyError, TypeError, AttributeError):
            return WrittenSummary(template, "template (invalid_output)")
        failed = check_summary(text, sections, day)
        if failed:
            return WrittenSummary(template, f"template ({failed})")
        return WrittenSummary(text, "bedrock")


def publish(client: Any, topic_arn: str, summary: WrittenSummary, day: datetime) -> str:
    """Send the summary to the leads' topic (e-mail subscribers get it as the body); the message id."""
    footer = f"\n\n(written by {summary.source}; the numbers are the console's, docs/console.md)"
    answer = client.publish(
        TopicArn=topic_arn,
        Subject=f"ReturnGuard review summary {day:%Y-%m-%d}",
        Message=summary.text + footer,
    )
    return str(answer["MessageId"])
