"""The demo's return step over real HTTP: the local API in front of the score Lambda, moto, and the local
inference server serving one archive with both models; orders first, then their return requests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local import stack as local_stack
from local.api_server import serve, with_return_model
from local.demo import RETURN_SCENARIOS, sample_return_requests, score_returns_over_api
from local.inference_server import serve as serve_model
from returnguard.cli import Client
from tests.return_model import RETURN_TEST_VERSION
from tests.unit.api.fakes import ADDRESS

pytestmark = pytest.mark.slow


def test_the_demo_scores_return_requests_and_a_rule_catches_each_abuse(two_lane_model, tmp_path) -> None:
    config = with_return_model(json.loads((Path(two_lane_model) / "config.json").read_text()), two_lane_model)
    assert config["return"]["model_version"] == RETURN_TEST_VERSION
    stack = local_stack.start(prefix="returnguard-demo-returns")  # moto's state is per process: own names
    model = serve_model(str(two_lane_model))
    api = serve(stack, config, model.url, log_path=tmp_path / "score.log")
    try:
        orders = [
            {
                "event_type": "order",
                "order": {
                    "order_id": f"DEMO-O{i}",
                    "customer_id": f"C{i}",
                    "product_id": f"P{i}",
                    "region": "KA",
                    "amount": 1000.0 + i,
                    "currency": "INR",
                    "payment_method": "upi",
                    "delivery_address": ADDRESS,
                    "order_time": f"2025-03-{10 + i:02d}T10:00:00Z",
                },
            }
            for i in range(len(RETURN_SCENARIOS))
        ]
        client = Client(api.url)
        for order in orders:
            client.score(order)  # the API records what was paid for each
        table = score_returns_over_api(api.url, sample_return_requests(orders))
    finally:
        api.stop()
        model.stop()
        stack.stop()
    actions = dict(zip(table.scenario, table.action, strict=True))
    for scenario in actions:
        if scenario.startswith("abuse:"):
            assert actions[scenario] == "deny_refund", table.to_string()
        else:
            assert actions[scenario] != "deny_refund", table.to_string()
    assert table.score.notna().all()  # the return model scored every one
    assert list(table.columns) == [
        "return",
        "order",
        "scenario",
        "refund",
        "score",
        "level",
        "action",
        "top factor",
    ]
    assert (table["top factor"] != "-").all()
    log = (tmp_path / "score.log").read_text()
    assert "Ignore all previous instructions" not in log and "टूटा" not in log
