"""The DynamoDB feature-store adapter against moto: batched reads, versioned writes, blocklist keys."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from local.stack import create_table
from returnguard.aws.feature_store import (
    DynamoFeatureStore,
    VersionConflict,
    blocklist_key,
    decode_item,
    encode_item,
)
from returnguard.tables import FEATURES, entity_key


@pytest.fixture
def store():
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, FEATURES, "features")
        yield DynamoFeatureStore(client, "features"), client


def test_state_round_trips_without_number_conversion():
    state = {"order_count": 3, "recent_orders": [[1, "O1", 129_999, "ab", None]], "addresses": {"ab": 1}}
    decoded = decode_item(encode_item("customer#C1", state, 7))
    assert decoded["state"] == state
    assert decoded["version"] == 7
    assert decoded["pk"] == "customer#C1"


def test_get_many_reads_more_than_one_batch_and_skips_unknown_keys(store):
    adapter, client = store
    for i in range(130):
        client.put_item(
            TableName="features", Item=encode_item(entity_key("product", f"P{i}"), {"order_count": i}, 1)
        )
    keys = [entity_key("product", f"P{i}") for i in range(130)] + ["customer#nobody"]
    found = adapter.get_many(keys)
    assert len(found) == 130
    assert found["product#P129"]["state"] == {"order_count": 129}
    assert "customer#nobody" not in found


def test_versioned_write_rejects_a_stale_writer(store):
    adapter, _ = store
    assert adapter.get_aggregate("customer", "C1") == (None, 0)
    assert adapter.put_aggregate("customer", "C1", {"order_count": 1}, expected_version=0) == 1
    with pytest.raises(VersionConflict):
        adapter.put_aggregate("customer", "C1", {"order_count": 1}, expected_version=0)
    assert adapter.put_aggregate("customer", "C1", {"order_count": 2}, expected_version=1) == 2
    with pytest.raises(VersionConflict):
        adapter.put_aggregate("customer", "C1", {"order_count": 99}, expected_version=1)
    assert adapter.get_aggregate("customer", "C1") == ({"order_count": 2}, 2)


def test_blocklist_keys_are_namespaced_and_validated():
    assert blocklist_key("card", "fp_1") == "blocklist_card#fp_1"
    with pytest.raises(ValueError):
        blocklist_key("phone", "123")
