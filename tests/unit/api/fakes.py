"""Shared fakes for the API tests: a scripted model, a customer history built with the real aggregates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from returnguard.aggregates import (
    ReturnContext,
    apply_order_to_customer,
    apply_return_to_customer,
    new_customer,
)
from returnguard.features import OrderContext, address_key
from returnguard.ports import ModelScore, ModelUnavailable

T0 = 1_700_000_000_000  # 2023-11-14, outside every sale window
DAY = 86_400_000
ADDRESS = "12 MG Road, Bengaluru"


class FakeModel:
    def __init__(
        self, score: float = 0.1, contributions: Mapping[str, float] | None = None, down: bool = False
    ):
        self.result = ModelScore(score, dict(contributions or {}), "test-v1")
        self.down = down
        self.vectors: list[dict[str, float]] = []

    def score(self, vector: Mapping[str, float]) -> ModelScore:
        self.vectors.append(dict(vector))
        if self.down:
            raise ModelUnavailable("down")
        return self.result


def order_context(order_id: str, t: int, customer_id: str = "C1", payment: str = "card") -> OrderContext:
    return OrderContext(order_id, customer_id, "P1", "S1", "electronics", "KA", t, 100_000, payment, ADDRESS)


def customer_with_history(orders: int, returned: int, last_order_ms: int) -> dict[str, Any]:
    """`orders` orders one day apart ending at last_order_ms, the first `returned` of the last six returned."""
    state: dict[str, Any] = new_customer(registered_at_ms=last_order_ms - 400 * DAY)
    times = [last_order_ms - (orders - 1 - i) * DAY for i in range(orders)]
    for i, t in enumerate(times):
        state = apply_order_to_customer(state, order_context(f"O{i}", t))
    for i, t in enumerate(times[-6:][:returned]):
        ret = ReturnContext(
            f"R{i}",
            f"O{orders - 6 + i}",
            "C1",
            "P1",
            "S1",
            "electronics",
            "KA",
            t + 3_600_000,
            "changed_mind",
        )
        state = apply_return_to_customer(state, ret)
    return state


def address_of(address: str = ADDRESS) -> str:
    return address_key(address)
