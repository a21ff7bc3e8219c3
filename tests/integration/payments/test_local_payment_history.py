"""The local stack (make demo's step 6, `python -m local.api_server`) loads the payment job's latest
items beside the orders', so a payment scored locally has its history. (moto in process stands for the
local stack's moto server: seed_features only needs its DynamoDB client and table name.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from local.api_server import latest_aggregates, seed_features
from local.stack import create_table
from returnguard.aws.feature_store import DynamoFeatureStore
from returnguard.payment_scoring import decide_payment
from returnguard.tables import FEATURES, entity_key
from tests.unit.api.fakes import FakeModel
from tests.unit.payments.test_payment_scoring import NOW, POLICY, request, store_with_burst


def write_items(folder: Path, items: dict[str, dict]) -> None:
    """JSON lines as the Spark jobs write them (glue_jobs/features.py, glue_jobs/payment_features.py)."""
    folder.mkdir(parents=True)
    lines = (json.dumps({"pk": pk, "state": state}) for pk, state in items.items())
    (folder / "part-0000.jsonl").write_text("\n".join(lines) + "\n")


class LocalTables:
    """What seed_features uses of local.stack.LocalStack."""

    table_names = {"features": "features"}

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name="us-east-1")


def test_the_local_stack_scores_a_payment_with_the_payment_jobs_history(tmp_path) -> None:
    # Given a lake's processed/ with the order job's items and the payment job's (weeks of C1's payments)
    history = {pk: item["state"] for pk, item in store_with_burst().items.items()}
    write_items(tmp_path / "features" / "online", {entity_key("customer", "C9"): {"orders": 1}})
    write_items(tmp_path / "payments" / "features" / "online", history)
    with mock_aws():
        stack = LocalTables()
        create_table(stack.client("dynamodb"), FEATURES, "features")
        # When the local stack is seeded as make demo and local.api_server seed it
        assert seed_features(stack, latest_aggregates(tmp_path)) == len(history) + 1  # type: ignore[arg-type]
        store = DynamoFeatureStore(stack.client("dynamodb"), "features")
        decision = decide_payment(request(), store, FakeModel(0.1), POLICY, decision_id="d1", now=NOW)
    # Then the payment's features come from its history, not the defaults of a customer never seen
    assert decision.vector["customer_payments_30d"] == 24 and decision.vector["customer_distinct_cards"] == 2
    assert decision.vector["card_payments_last_1h"] == 4


def test_a_lake_without_payments_seeds_the_order_items_alone(tmp_path) -> None:
    write_items(tmp_path / "features" / "online", {entity_key("customer", "C9"): {"orders": 1}})
    assert [pk for pk, _ in latest_aggregates(tmp_path)] == [entity_key("customer", "C9")]
