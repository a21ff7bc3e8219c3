"""Blocklist sync against a real MariaDB server, with S3, DynamoDB and Secrets Manager on moto."""

from __future__ import annotations

import csv
import importlib.util
import io
import logging
import sys
from pathlib import Path

import pytest

from local.stack import free_port
from returnguard.aws.blocklist import (
    WATERMARK_KEY,
    BlocklistSourceUnavailable,
    BlocklistWriteFailed,
    DynamoBlocklistTable,
    sync,
)
from returnguard.aws.feature_store import blocklist_key
from returnguard.features import address_key

from .conftest import BUCKET, DB_PASSWORD, DB_USER, TABLE, World

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]

ADDRESS = "14 MG Road, Kothrud, Pune 411038"
CARD = "0a1b2c3d4e5f6a7b"


def seed_three(world: World) -> None:
    world.insert(
        ("customer", "  C0000042 ", "chargebacks", "2025-03-01 10:00:00", 1),
        (" Address ", "  14  MG Road,   Kothrud, PUNE 411038 ", " empty   box\tring ", None, 1),
        ("CARD", "0A1B-2C3D-4E5F-6A7B", "stolen", "2025-03-02", 1),
    )


def test_full_sync_writes_cleaned_items_and_one_snapshot(world: World):
    seed_three(world)

    result = sync(*world.adapters())

    items = world.items()
    customer = items[blocklist_key("customer", "C0000042")]
    address = items[blocklist_key("address", address_key(ADDRESS))]
    card = items[blocklist_key("card", CARD)]
    assert customer["reason"]["S"] == "chargebacks"
    assert customer["listed_at"]["S"] == "2025-03-01T10:00:00.000"
    assert address["reason"]["S"] == "empty box ring"
    assert card["source_ids"]["SS"] == ["3"]
    assert WATERMARK_KEY in items and len(items) == 4
    assert (result.rows_read, result.upserted, result.removed, result.skipped) == (3, 3, 0, 0)
    ((key, body),) = world.objects().items()
    assert key.startswith("raw/blocklist/dt=") and key == result.snapshots[0]
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert [r["entity_key"] for r in rows] == ["C0000042", address_key(ADDRESS), CARD]
    assert ADDRESS.lower() not in body.decode().lower()  # the lake keeps the key, not the address


def test_incremental_sync_reads_only_changed_rows_and_removes_deactivated(world: World):
    seed_three(world)
    sync(*world.adapters())
    before = world.items()

    world.execute("UPDATE src_blacklist SET active = 0 WHERE id = 3")
    world.insert(("customer", "C0000099", "fraud ring", None, 1))
    result = sync(*world.adapters())

    after = world.items()
    assert (result.rows_read, result.upserted, result.removed) == (2, 1, 1)
    assert blocklist_key("card", CARD) not in after
    assert blocklist_key("customer", "C0000099") in after
    key = blocklist_key("customer", "C0000042")
    assert after[key] == before[key]
    assert len(world.objects()) == 2


def test_entry_stays_while_another_active_row_lists_it(world: World):
    world.insert(("customer", "C1", "first", None, 1), ("customer", "c1 ", "ignored: other id", None, 1))
    world.insert(("customer", "C1", "second", None, 1))
    sync(*world.adapters())
    world.execute("UPDATE src_blacklist SET active = 0 WHERE id = 1")

    sync(*world.adapters())
    item = world.items()[blocklist_key("customer", "C1")]
    assert item["source_ids"]["SS"] == ["3"]

    world.execute("UPDATE src_blacklist SET active = 0 WHERE id = 3")
    sync(*world.adapters())
    assert blocklist_key("customer", "C1") not in world.items()
    assert blocklist_key("customer", "c1") in world.items()


def test_rerun_changes_nothing(world: World):
    seed_three(world)
    sync(*world.adapters())
    items, objects = world.items(), world.objects()

    result = sync(*world.adapters())

    assert (result.rows_read, result.upserted, result.removed, result.snapshots) == (0, 0, 0, [])
    assert world.items() == items
    assert world.objects() == objects


def test_database_down_raises_typed_error_and_writes_nothing(world: World, caplog):
    seed_three(world)
    sync(*world.adapters())
    items, objects = world.items(), world.objects()
    world.insert(("customer", "C0000777", "new", None, 1))

    adapters = world.adapters(port=free_port())  # nothing listens there

    with (
        caplog.at_level(logging.DEBUG, logger="returnguard"),
        pytest.raises(BlocklistSourceUnavailable) as raised,
    ):
        sync(*adapters)

    assert raised.value.code == "blocklist_source_unavailable"
    assert world.items() == items  # watermark included
    assert world.objects() == objects
    assert DB_PASSWORD not in str(raised.value) and DB_PASSWORD not in caplog.text

    result = sync(*world.adapters(port=world.port))  # back up: the missed row arrives
    assert result.rows_read == 1 and blocklist_key("customer", "C0000777") in world.items()


def test_write_failure_keeps_watermark_and_a_retry_converges(world: World, monkeypatch):
    seed_three(world)
    source, snapshots, table = world.adapters()
    real_apply = DynamoBlocklistTable.apply
    calls = {"n": 0}

    def flaky_apply(self, entry):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("throttled")
        return real_apply(self, entry)

    monkeypatch.setattr(DynamoBlocklistTable, "apply", flaky_apply)
    with pytest.raises(BlocklistWriteFailed) as raised:
        sync(source, snapshots, table)
    assert raised.value.code == "blocklist_write_failed"
    assert WATERMARK_KEY not in world.items()
    first_objects = world.objects()

    result = sync(source, snapshots, table)

    assert result.rows_read == 3 and len(world.items()) == 4
    assert world.objects() == first_objects  # the retried page rewrote its own file, same bytes


def test_malformed_rows_are_skipped_counted_and_logged_without_pii(world: World, caplog):
    world.insert(
        ("phone", "+91 98200 00000", "x", None, 1),
        ("customer", "   ", "blank", None, 1),
        ("customer", None, "null", None, 1),
        ("card", "not-a-fingerprint", "x", None, 1),
        ("customer", "C5", "x", None, None),
        ("customer", "C6", "fine", None, 1),
    )

    with caplog.at_level(logging.INFO):
        result = sync(*world.adapters())

    assert result.skipped == 5
    assert result.skipped_by_reason == {
        "invalid_active": 1,
        "invalid_card_fingerprint": 1,
        "missing_value": 2,
        "unknown_entity_type": 1,
    }
    c6 = world.items()[blocklist_key("customer", "C6")]
    assert len(world.items()) == 2 and c6["listed_at"]["S"] != ""  # listed_at falls back to updated_at
    assert "98200" not in caplog.text and "not-a-fingerprint" not in caplog.text
    assert sync(*world.adapters()).skipped == 0  # counted once: the watermark moved past them


def test_handler_syncs_and_never_logs_the_secret(world: World, monkeypatch, capsys, caplog):
    seed_three(world)
    for name, value in {
        "RG_FEATURES_TABLE": TABLE,
        "RG_LAKE_BUCKET": BUCKET,
        "RG_DB_SECRET_ARN": world.secret_arn,
        "RG_DB_NAME": world.database,
        "RG_STAGE": "test",
        "POWERTOOLS_LOG_LEVEL": "DEBUG",
        "RG_DB_CA_BUNDLE": str(world.ca_bundle),
    }.items():
        monkeypatch.setenv(name, value)
    handler = load_handler()

    response = handler.lambda_handler({}, FakeContext())
    world.adapters(port=free_port())
    with pytest.raises(BlocklistSourceUnavailable):
        handler.lambda_handler({}, FakeContext())

    assert response["status"] == "ok" and response["upserted"] == 3
    output = capsys.readouterr()
    logs = output.out + output.err + caplog.text
    assert "blocklist_source_unavailable" in logs
    assert '"message":"blocklist sync done"' in output.out  # the sync's summary, as structured JSON
    assert DB_PASSWORD not in logs and DB_USER not in logs


def load_handler():
    path = Path(__file__).resolve().parents[3] / "lambdas" / "blocklist_sync" / "handler.py"
    spec = importlib.util.spec_from_file_location("blocklist_sync_handler", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.pop("blocklist_sync_handler", None)
    spec.loader.exec_module(module)
    return module


class FakeContext:
    function_name = "blocklist_sync"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:blocklist_sync"
    aws_request_id = "request-1"
