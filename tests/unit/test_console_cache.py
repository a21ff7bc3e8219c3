"""The console's case cache: one blocking read, then pages served from the snapshot while it refreshes."""

from __future__ import annotations

import threading

from local.console_server import CaseCache
from returnguard.console import case_from_record


def case(decision_id: str, **extra):
    return case_from_record({"decision_id": decision_id, "created_at": "2026-11-30T10:00:00Z", **extra})


class Store:
    def __init__(self) -> None:
        self.cases_now = [case("a")]
        self.reads = 0
        self.gate = threading.Event()
        self.gate.set()

    def cases(self):
        self.gate.wait(5)
        self.reads += 1
        return list(self.cases_now)


def test_a_stale_snapshot_is_served_while_the_table_is_read_again() -> None:
    now = [0.0]
    store = Store()
    cache = CaseCache(store, refresh_s=5, clock=lambda: now[0])  # type: ignore[arg-type]
    assert [c.decision_id for c in cache.all()] == ["a"] and store.reads == 1
    assert [c.decision_id for c in cache.all()] == ["a"] and store.reads == 1  # fresh: no read
    store.cases_now = [case("a"), case("b")]
    store.gate.clear()  # the next Scan hangs until released
    now[0] = 10.0
    assert [c.decision_id for c in cache.all()] == ["a"]  # stale: answered at once from the snapshot
    cache.put(case("a", review_status="legitimate", reviewed_at="2026-11-30T11:00:00Z"))
    store.gate.set()
    got: dict[str, str] = {}
    for _ in range(500):  # the background read finishes (no timing asserted, only the outcome)
        got = {c.decision_id: c.status for c in cache.all()}
        if "b" in got:
            break
        threading.Event().wait(0.01)
    # the new decision arrived, and the verdict recorded during the Scan was not undone by it
    assert got == {"a": "legitimate", "b": "open"} and store.reads == 2


def test_refresh_zero_reads_every_time() -> None:
    store = Store()
    cache = CaseCache(store, refresh_s=0)  # type: ignore[arg-type]
    cache.all()
    cache.all()
    assert store.reads == 2
