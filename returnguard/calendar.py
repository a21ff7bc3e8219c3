"""Festival and sale calendar (India), the external data both training and serving read.

Windows are whole local days in India Standard Time; `is_festival_sale` checks an event time against
them in epoch milliseconds so that Spark, the online function and the synthetic generator agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

IST = timezone(timedelta(hours=5, minutes=30))
DAY_MS = 86_400_000


@dataclass(frozen=True)
class SaleWindow:
    name: str
    first_day: date  # inclusive, IST
    last_day: date  # inclusive, IST
    kind: str  # "festival" or "sale"

    @property
    def start_ms(self) -> int:
        return _ist_midnight_ms(self.first_day)

    @property
    def end_ms(self) -> int:
        """Exclusive end: midnight IST after the last day."""
        return _ist_midnight_ms(self.last_day) + DAY_MS


def _ist_midnight_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=IST).timestamp()) * 1000


def _w(name: str, first: str, last: str, kind: str) -> SaleWindow:
    return SaleWindow(name, date.fromisoformat(first), date.fromisoformat(last), kind)


# Approximate public dates; the exact days matter less than being the same everywhere.
WINDOWS: tuple[SaleWindow, ...] = (
    _w("Republic Day sale", "2024-01-13", "2024-01-21", "sale"),
    _w("Holi", "2024-03-22", "2024-03-26", "festival"),
    _w("Eid al-Fitr", "2024-04-08", "2024-04-11", "festival"),
    _w("End of season sale", "2024-06-20", "2024-06-30", "sale"),
    _w("Independence Day sale", "2024-08-06", "2024-08-15", "sale"),
    _w("Raksha Bandhan", "2024-08-16", "2024-08-19", "festival"),
    _w("Big festive sale", "2024-09-27", "2024-10-06", "sale"),
    _w("Dussehra", "2024-10-10", "2024-10-13", "festival"),
    _w("Diwali", "2024-10-26", "2024-11-03", "festival"),
    _w("Christmas and New Year", "2024-12-20", "2025-01-01", "festival"),
    _w("Republic Day sale", "2025-01-14", "2025-01-20", "sale"),
    _w("Holi", "2025-03-11", "2025-03-15", "festival"),
    _w("Eid al-Fitr", "2025-03-29", "2025-04-01", "festival"),
    _w("End of season sale", "2025-06-19", "2025-06-29", "sale"),
    _w("Independence Day sale", "2025-08-05", "2025-08-15", "sale"),
    _w("Big festive sale", "2025-09-22", "2025-10-02", "sale"),
    _w("Dussehra", "2025-10-01", "2025-10-03", "festival"),
    _w("Diwali", "2025-10-16", "2025-10-24", "festival"),
    _w("Christmas and New Year", "2025-12-20", "2026-01-01", "festival"),
    _w("Republic Day sale", "2026-01-14", "2026-01-20", "sale"),
    _w("Holi", "2026-03-01", "2026-03-05", "festival"),
    _w("Eid al-Fitr", "2026-03-19", "2026-03-22", "festival"),
    _w("End of season sale", "2026-06-18", "2026-06-28", "sale"),
    _w("Independence Day sale", "2026-08-05", "2026-08-15", "sale"),
    _w("Big festive sale", "2026-09-21", "2026-10-01", "sale"),
    _w("Dussehra", "2026-10-18", "2026-10-21", "festival"),
    _w("Diwali", "2026-11-05", "2026-11-12", "festival"),
    _w("Christmas and New Year", "2026-12-20", "2027-01-01", "festival"),
)

_RANGES: tuple[tuple[int, int, str], ...] = tuple(sorted((w.start_ms, w.end_ms, w.name) for w in WINDOWS))


def window_at(event_time_ms: int) -> str | None:
    """Name of the festival or sale window containing the event time, or None."""
    for start, end, name in _RANGES:
        if start <= event_time_ms < end:
            return name
    return None


def is_festival_sale(event_time_ms: int) -> bool:
    return window_at(event_time_ms) is not None


_FESTIVALS: tuple[tuple[int, int], ...] = tuple(
    sorted((w.start_ms, w.end_ms) for w in WINDOWS if w.kind == "festival")
)


def festival_ranges_ms() -> list[tuple[int, int]]:
    """(start_ms, end_ms) of each festival (not the sales), by start."""
    return list(_FESTIVALS)


def days_to_festival(event_time_ms: int, cap_days: float) -> float:
    """Days from the event to the start of the next festival not yet over (0 during one), at most
    `cap_days` (also when the calendar has none left)."""
    for start, end in _FESTIVALS:
        if end > event_time_ms:  # the first by start is the nearest: max(start - t, 0) grows with start
            return min(max(start - event_time_ms, 0) / DAY_MS, cap_days)
    return cap_days


def ranges_ms() -> list[tuple[int, int, str]]:
    """(start_ms, end_ms, name) for each window: what the Spark job joins against."""
    return list(_RANGES)
