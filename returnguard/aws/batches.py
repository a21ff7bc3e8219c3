"""DynamoDB batch calls to the end: BatchGetItem and BatchWriteItem may leave part of a request
unprocessed (throttling, size limits), and the caller has to send that part again."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any


def until_processed(
    send: Callable[..., dict[str, Any]],
    request: dict[str, Any],
    *,
    what: str,
    retries: int = 8,
    first_backoff_s: float = 0.01,
) -> Iterator[dict[str, Any]]:
    """Yield the responses of `send(RequestItems=request)` (a client's batch_get_item or
    batch_write_item), resending what each leaves unprocessed after an exponential backoff. Raises
    RuntimeError naming `what` when `retries` resends were not enough."""
    for attempt in range(retries + 1):
        response = send(RequestItems=request)
        yield response
        keys, items = response.get("UnprocessedKeys"), response.get("UnprocessedItems")
        request = keys or items or {}
        if not request:
            return
        if attempt == retries:
            raise RuntimeError(f"{what} kept returning unprocessed {'keys' if keys else 'items'}")
        time.sleep(first_backoff_s * 2**attempt)
