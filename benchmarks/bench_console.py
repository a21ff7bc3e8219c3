"""Review console page loads with a full queue: 10,000 decisions waiting (scale full; 1,000 quick) in the
local stack's decisions table, the console in front, pages fetched over HTTP as a signed-in analyst.

Measured: the queue page when the console must read the table again (its cache expired: one Scan of
every decision, then filter, count, sort, page and render), the queue page from the cache (within its
refresh interval, as when an analyst pages or filters), a filtered queue page, and a case view (the
case, its audit trail, the customer's timeline, linked accounts and similar cases; the similar-case
embeddings are warm after the first view). Baselines in the same run: the Scan alone through boto3
(the floor of a cold page) and the console's /health over the same connection (the floor of any page).
Target (issue 17): pages under 1 s locally with 10,000 queued decisions.
"""

from __future__ import annotations

import json
import re
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import requests

SIZES = {"quick": 1_000, "full": 10_000}
REPEAT = 7


def _seed(stack: Any, count: int) -> list[str]:
    from returnguard.aws.batches import until_processed

    client = stack.client("dynamodb")
    table = stack.table_names["decisions"]
    now = datetime.now(timezone.utc)
    actions = ("manual_review", "otp_verification", "manual_review", "approve")
    levels = {"manual_review": "high", "otp_verification": "medium", "approve": "low"}
    ids, batch = [], []
    for i in range(count):
        action = actions[i % len(actions)] if i % 10 else "manual_review"
        decision_id = f"bench-{i:06d}"
        ids.append(decision_id)
        response = {
            "order_id": f"O-{i:06d}",
            "decision_id": decision_id,
            "risk_score": round(0.3 + (i % 70) / 100, 3),
            "risk_level": levels[action],
            "recommended_action": action,
            "rules_triggered": ["high_amount"] if i % 7 == 0 else [],
            "model_version": "v-bench",
            "explanation": {"summary": "Elevated risk.", "key_factors": [f"Customer returned {i % 6} of 6"]},
        }
        request = {
            "event_type": "return" if i % 5 == 0 else "order",
            "order": {
                "order_id": f"O-{i:06d}",
                "customer_id": f"C{i % 2500}",
                "amount": 100.0 + i,
                "currency": "INR",
                "region": ("MH", "KA", "DL", "TN")[i % 4],
                "delivery_address": f"{i % 3000} MG Road",
            },
        }
        item = {
            "decision_id": {"S": decision_id},
            "customer_id": {"S": f"C{i % 2500}"},
            "created_at": {"S": (now - timedelta(minutes=i)).isoformat()},
            "risk_level": {"S": levels[action]},
            "response": {"S": json.dumps(response)},
            "request": {"S": json.dumps(request)},
            "contributions": {"S": json.dumps({"customer_return_rate": 0.4, "payment_is_cod": 0.2})},
        }
        batch.append({"PutRequest": {"Item": item}})
        if len(batch) == 25 or i == count - 1:
            for _ in until_processed(client.batch_write_item, {table: batch}, what="bench decisions"):
                pass
            batch = []
    return ids


def _timed(session: requests.Session, url: str, expect: str) -> float:
    started = time.perf_counter()
    answer = session.get(url, timeout=120)
    elapsed = (time.perf_counter() - started) * 1000
    if answer.status_code != 200 or expect not in answer.text:
        raise RuntimeError(f"{url}: {answer.status_code} {answer.text[:300]}")
    return elapsed


def _row(
    name: str, samples: list[float], baseline: list[float] | None = None, note: str = ""
) -> dict[str, Any]:
    value = statistics.median(samples)
    row: dict[str, Any] = {"name": name, "value": round(value, 1), "unit": "ms (median)"}
    if baseline:
        row["baseline"] = round(statistics.median(baseline), 2)
        row["ratio"] = round(value / row["baseline"], 1)
    if note:
        row["note"] = note
    return row


def run(scale: str) -> list[dict[str, Any]]:
    from local import stack as local_stack
    from local.console_server import serve_local

    count = SIZES[scale]
    stack = local_stack.start(prefix="rg-bench-console")
    try:
        started = time.perf_counter()
        ids = _seed(stack, count)
        seeded_s = time.perf_counter() - started
        cold = serve_local(stack, tempfile.mkdtemp(prefix="rg-bench-lake-"), refresh_s=0)
        warm = serve_local(stack, tempfile.mkdtemp(prefix="rg-bench-lake-"), refresh_s=3600)
        try:
            sessions = {}
            for name, server in (("cold", cold), ("warm", warm)):
                session = requests.Session()
                token = re.search(r'name="csrf" value="([^"]+)"', session.get(f"{server.url}/login").text)
                assert token
                session.post(
                    f"{server.url}/login",
                    data={
                        "csrf": token.group(1),
                        "username": "analyst",
                        "password": server.users["analyst"][0],
                    },
                )
                sessions[name] = session
            client = stack.client("dynamodb")
            paginator = client.get_paginator("scan")
            scan = []
            for _ in range(3):
                t = time.perf_counter()
                scanned = sum(
                    len(p["Items"]) for p in paginator.paginate(TableName=stack.table_names["decisions"])
                )
                scan.append((time.perf_counter() - t) * 1000)
                assert scanned == count
            health = [_timed(sessions["warm"], f"{warm.url}/health", "ok") for _ in range(REPEAT * 3)]
            queue_cold = [_timed(sessions["cold"], f"{cold.url}/", "waiting-count") for _ in range(3)]
            _timed(sessions["warm"], f"{warm.url}/", "waiting-count")  # fills the cache
            queue_warm = [_timed(sessions["warm"], f"{warm.url}/", "waiting-count") for _ in range(REPEAT)]
            filtered = [
                _timed(
                    sessions["warm"],
                    f"{warm.url}/?lane=return&min_amount=500&sort=risk_score&descending=1",
                    "match-count",
                )
                for _ in range(REPEAT)
            ]
            first_case = _timed(sessions["warm"], f"{warm.url}/cases/{ids[1]}", "case-title")
            cases = [
                _timed(sessions["warm"], f"{warm.url}/cases/{ids[i * 10 + 1]}", "case-title")
                for i in range(REPEAT)
            ]
        finally:
            cold.stop()
            warm.stop()
    finally:
        stack.stop()
    waiting = f"{count:,} decisions, {sum(1 for i in range(count) if i % 4 != 3 or i % 10 == 0):,} waiting"
    return [
        {"name": "decisions seeded", "value": count, "unit": "decisions", "note": f"in {seeded_s:.1f} s"},
        _row(
            "queue page reading the table (first page after start)",
            queue_cold,
            scan,
            f"{waiting}; baseline: the Scan alone; later pages never wait for a Scan (refreshed in the background)",
        ),
        _row("queue page from the cache", queue_warm, health, "baseline: /health on the same connection"),
        _row("filtered + sorted queue page (cache)", filtered, health, "baseline: /health"),
        _row("case view", cases, health, f"first case view (embeds the case texts): {first_case:.0f} ms"),
    ]


if __name__ == "__main__":
    import sys

    for line in run(sys.argv[1] if len(sys.argv) > 1 else "quick"):
        print(line)
