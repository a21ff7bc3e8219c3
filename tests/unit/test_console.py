"""The console's domain: what waits for a person, the queue's query, verdicts and labels, the waterfall."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone

import pytest

from returnguard.console import (
    ConsoleError,
    QueueQuery,
    base_value,
    case_from_record,
    check_can_decide,
    label_row,
    make_verdict,
    needs_person,
    parse_query,
    queue_statuses,
    select,
    waterfall_svg,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def record(order_id: str, action: str = "manual_review", hours: float = 1, amount: float = 100.0, **extra):
    response = {
        "order_id": order_id,
        "risk_score": extra.pop("score", 0.7),
        "recommended_action": action,
        "rules_triggered": extra.pop("rules", []),
        "model_version": "v1",
    }
    request = {"event_type": extra.pop("lane", "order"), "order": {"order_id": order_id, "amount": amount}}
    return {
        "decision_id": f"d-{order_id}",
        "customer_id": "C1",
        "created_at": (NOW - timedelta(hours=hours)).isoformat(),
        "risk_level": extra.pop("level", "high"),
        "response": json.dumps(response),
        "request": json.dumps(request),
        **extra,
    }


def test_what_waits_for_a_person() -> None:
    assert needs_person("manual_review") and needs_person("otp_verification")
    assert needs_person("request_photo_proof") and needs_person("refund_after_review")  # a new lane's actions
    assert not needs_person("approve") and not needs_person("block") and needs_person("approve", flagged=True)


def test_a_decision_that_says_review_required_waits_whatever_its_action() -> None:
    raw = record("R", action="open_box_pickup")
    assert not case_from_record(raw).waiting
    response = json.loads(raw["response"]) | {"review_required": True}
    assert case_from_record({**raw, "response": json.dumps(response)}).waiting


def test_a_lane_that_stores_less_still_reads() -> None:
    case = case_from_record(
        {"decision_id": "d1", "created_at": "2026-11-30T10:00:00Z", "action": "manual_review"}
    )
    assert case.lane == "order" and case.risk_score is None and case.amount is None and case.waiting


def test_filters_counts_oldest_and_paging() -> None:
    cases = [
        case_from_record(r)
        for r in (
            record("A", hours=5, amount=50),
            record("B", hours=1, amount=500, lane="return"),
            record("C", action="approve"),
            record("D", action="otp_verification", hours=2, level="medium"),
            record("E", hours=9, review_status="legitimate"),
        )
    ]
    page = select(cases, QueueQuery(), NOW)
    assert [c.order_id for c in page.cases] == ["A", "D", "B"]  # oldest first
    assert page.waiting == 3 and page.oldest_age_s == 5 * 3600
    assert page.by_lane == {"order": 2, "return": 1} and page.by_level == {"medium": 1, "high": 2}
    assert [c.order_id for c in select(cases, QueueQuery(lane="return"), NOW).cases] == ["B"]
    assert [c.order_id for c in select(cases, QueueQuery(min_amount=101), NOW).cases] == ["B"]
    assert [c.order_id for c in select(cases, QueueQuery(status="legitimate"), NOW).cases] == ["E"]
    second = select(cases, QueueQuery(sort="amount", descending=True, page_size=2, page=2), NOW)
    assert [c.order_id for c in second.cases] == ["A"] and second.pages == 2
    beyond = select(cases, QueueQuery(page=9, page_size=2), NOW)
    assert beyond.page == 2 and [c.order_id for c in beyond.cases] == ["B"]


def test_query_round_trips_and_refuses_bad_values() -> None:
    query = parse_query({"lane": "return", "min_amount": "10", "descending": "1", "page": "3"})
    assert query == QueueQuery(lane="return", min_amount=10.0, descending=True, page=3)
    assert parse_query(query.as_params()) == query
    for bad in ({"level": "x"}, {"page": "0"}, {"page_size": "201"}, {"max_age_hours": "nan"}, {"x": "1"}):
        with pytest.raises(ConsoleError) as raised:
            parse_query(bad)
        assert raised.value.status == 400 and raised.value.field == next(iter(bad))


def test_verdicts_and_their_labels() -> None:
    case = case_from_record(record("A"))
    abuse = make_verdict(case.decision_id, "confirmed_abuse", " boxed twice ", "ana", "analyst", NOW)
    assert abuse.note == "boxed twice"
    assert label_row(case, abuse) == {
        "order_id": "A",
        "is_abuse": 1,
        "abuse_type": "analyst_verdict",
        "labeled_at": NOW,
    }
    fine = make_verdict(case.decision_id, "legitimate", "", "ana", "analyst", NOW)
    assert label_row(case, fine)["is_abuse"] == 0  # type: ignore[index]
    more = make_verdict(case.decision_id, "need_more_info", "photos", "ana", "analyst", NOW)
    assert label_row(case, more) is None
    with pytest.raises(ConsoleError, match="information is missing"):
        make_verdict(case.decision_id, "need_more_info", "  ", "ana", "analyst", NOW)
    decided = case_from_record(record("B", review_status="legitimate", reviewed_by="bo"))
    with pytest.raises(ConsoleError) as raised:
        check_can_decide(decided, fine)
    assert raised.value.status == 409
    check_can_decide(case_from_record(record("C", review_status="need_more_info")), fine)


def test_waterfall_starts_at_the_base_and_ends_at_the_score() -> None:
    contributions = {f"f{i}": (-1) ** i * 0.1 * (i + 1) for i in range(14)} | {"<b>bold</b>": 0.05}
    base = base_value(0.8, contributions)
    assert base is not None and math.isclose(base + sum(contributions.values()), math.log(0.8 / 0.2))
    svg = waterfall_svg(0.8, contributions)
    assert svg.startswith("<svg") and "score 0.800" in svg and "5 other features" in svg
    assert svg.count("<rect") == 11
    waterfall = waterfall_svg(0.8, {"<b>bold</b>": 1.0})
    assert "&lt;b&gt;bold&lt;/b&gt;" in waterfall and "<b>" not in waterfall
    assert "no model score" in waterfall_svg(None, {"a": 1.0}) and "no contributions" in waterfall_svg(
        0.5, {}
    )


def test_daily_summary_rates_and_rising_reasons() -> None:
    from returnguard.console import daily_summary

    def returned(order_id: str, code: str, hours: float, **extra):
        raw = record(order_id, hours=hours, lane="return", **extra)
        request = json.loads(raw["request"])
        request["return"] = {"reason_code": code}
        return case_from_record({**raw, "request": json.dumps(request)})

    cases = [
        returned("A", "empty_box", 1, review_status="confirmed_abuse", rules=["blocklisted"]),
        returned("B", "empty_box", 2, review_status="legitimate", rules=["blocklisted"]),
        returned("C", "empty_box", 3),
        returned("D", "size_fit", 4),
        *[returned(f"W{i}", "size_fit", 24 * (1 + i) + 1) for i in range(7)],
        returned("OLD", "empty_box", 24 * 30),
    ]
    summary = dict(daily_summary(cases, NOW))
    assert dict(summary["Volumes (last 24 h)"])["decided by analysts"] == "2"
    assert dict(summary["Confirmed-abuse rate per rule"])["blocklisted"] == "1 of 2 (50%)"
    rising = summary["Return reasons rising (last day against the daily mean of the 7 days before)"]
    assert rising[0] == ("empty_box", "3 (7-day daily mean 0.0)")
    assert rising[1][0] == "size_fit" and rising[1][1].startswith("1 (7-day daily mean 1.0")


@pytest.mark.parametrize(
    ("status", "read"),
    [
        ("open", ("open", "need_more_info")),
        ("need_more_info", ("open", "need_more_info")),
        ("legitimate", ("open", "need_more_info", "legitimate")),
        ("all", ("open", "need_more_info", "confirmed_abuse", "legitimate")),
    ],
)
def test_a_queue_page_reads_the_waiting_statuses_and_the_one_it_filters_on(status, read):
    assert queue_statuses(parse_query({"status": status})) == read
