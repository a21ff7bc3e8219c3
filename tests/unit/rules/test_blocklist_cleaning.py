"""Cleaning of blocklist source rows: trimming, normalising, dates, nulls and malformed rows."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from returnguard.aws.blocklist import MalformedRow, clean_row, parse_time
from returnguard.features import address_key

UPDATED = datetime(2025, 5, 1, 12, 0, 0, 123000)


def row(**overrides):
    base = {"id": 7, "entity_type": "customer", "value": "C1", "reason": None, "listed_at": None}
    return {**base, "updated_at": UPDATED, "active": 1, **overrides}


def test_address_is_keyed_by_its_normalised_form():
    entry = clean_row(row(entity_type=" ADDRESSES ", value="  14  MG Road,\tPune "))
    assert entry.entity_type == "address"
    assert entry.entity_key == address_key("14 mg road, pune")


def test_card_separators_and_case_are_removed():
    assert clean_row(row(entity_type="card", value="0A1B 2C3D-4E5F:6A7B")).entity_key == "0a1b2c3d4e5f6a7b"


def test_missing_listed_at_falls_back_to_updated_at_and_reason_is_tidied():
    entry = clean_row(row(reason="  too   many\nchargebacks ", listed_at="0000-00-00 00:00:00"))
    assert entry.listed_at == UPDATED
    assert entry.reason == "too many chargebacks"


@pytest.mark.parametrize(
    "overrides,reason",
    [
        ({"entity_type": "email"}, "unknown_entity_type"),
        ({"entity_type": None}, "unknown_entity_type"),
        ({"value": "  "}, "missing_value"),
        ({"value": None}, "missing_value"),
        ({"entity_type": "card", "value": "1234"}, "invalid_card_fingerprint"),
        ({"active": "maybe"}, "invalid_active"),
        ({"active": None}, "invalid_active"),
        ({"updated_at": "yesterday"}, "invalid_updated_at"),
    ],
)
def test_malformed_rows_name_their_reason(overrides, reason):
    with pytest.raises(MalformedRow) as raised:
        clean_row(row(**overrides))
    assert raised.value.reason == reason


@pytest.mark.parametrize(
    "flag,active", [("Y", True), (" no ", False), (b"1", True), (0, False), (True, True)]
)
def test_active_flag_spellings(flag, active):
    assert clean_row(row(active=flag)).active is active


def test_parse_time_normalises_to_naive_utc():
    aware = datetime(2025, 5, 1, 17, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert parse_time(aware) == datetime(2025, 5, 1, 12, 0)
    assert parse_time(date(2025, 5, 1)) == datetime(2025, 5, 1)
    assert parse_time("2025-05-01T12:00:00Z") == datetime(2025, 5, 1, 12, 0)
    assert parse_time("01/05/2025") == datetime(2025, 5, 1)
    assert parse_time("soon") is None
