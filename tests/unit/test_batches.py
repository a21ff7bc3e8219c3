"""until_processed: DynamoDB batch calls resent until nothing is left unprocessed."""

from __future__ import annotations

from typing import Any

import pytest

from returnguard.aws.batches import until_processed


def test_resends_only_what_was_left_until_nothing_is() -> None:
    sent: list[Any] = []
    leftovers = [{"t": ["b", "c"]}, {"t": ["c"]}, {}]

    def batch_write_item(RequestItems: dict) -> dict:  # noqa: N803
        sent.append(RequestItems)
        return {"UnprocessedItems": leftovers[len(sent) - 1]}

    responses = list(until_processed(batch_write_item, {"t": ["a", "b", "c"]}, what="x", first_backoff_s=0))
    assert sent == [{"t": ["a", "b", "c"]}, {"t": ["b", "c"]}, {"t": ["c"]}]
    assert len(responses) == 3


def test_gives_up_after_the_retries_naming_what_and_the_kind() -> None:
    calls = {"n": 0}

    def batch_get_item(RequestItems: dict) -> dict:  # noqa: N803
        calls["n"] += 1
        return {"Responses": {}, "UnprocessedKeys": RequestItems}

    with pytest.raises(RuntimeError, match="features table kept returning unprocessed keys"):
        list(
            until_processed(
                batch_get_item, {"t": {"Keys": []}}, what="features table", retries=3, first_backoff_s=0
            )
        )
    assert calls["n"] == 4
