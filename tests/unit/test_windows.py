"""Window arithmetic, including daylight-saving transitions in two zones."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from ballast.windows import InvalidWindow, build_schedule, state_at

UTC = dt.UTC


def at(zone: str, *args: int, fold: int = 0) -> dt.datetime:
    return dt.datetime(*args, tzinfo=ZoneInfo(zone), fold=fold).astimezone(UTC)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


CASES = {
    # name: (cron, duration h, zone, now, want_open, want_end, want_next_open)
    "closed before nightly start": (
        "0 22 * * *",
        8,
        "UTC",
        utc(2026, 6, 1, 12),
        False,
        None,
        utc(2026, 6, 1, 22),
    ),
    "open during nightly window": (
        "0 22 * * *",
        8,
        "UTC",
        utc(2026, 6, 2, 3),
        True,
        utc(2026, 6, 2, 6),
        utc(2026, 6, 2, 22),
    ),
    "start instant counts as open": (
        "0 22 * * *",
        8,
        "UTC",
        utc(2026, 6, 1, 22),
        True,
        utc(2026, 6, 2, 6),
        utc(2026, 6, 2, 22),
    ),
    "end instant counts as closed": (
        "0 22 * * *",
        8,
        "UTC",
        utc(2026, 6, 2, 6),
        False,
        None,
        utc(2026, 6, 2, 22),
    ),
    # Berlin springs forward 2026-03-29 02:00 -> 03:00. A 22:00 CET start lasts 8
    # real hours, so it closes at 07:00 CEST; the next start is 22:00 CEST.
    "berlin window spanning spring forward": (
        "0 22 * * *",
        8,
        "Europe/Berlin",
        at("Europe/Berlin", 2026, 3, 29, 6, 30),
        True,
        at("Europe/Berlin", 2026, 3, 29, 7),
        at("Europe/Berlin", 2026, 3, 29, 22),
    ),
    # 02:30 does not exist that night: the start happens just after the gap.
    "berlin start inside the skipped hour": (
        "30 2 * * *",
        1,
        "Europe/Berlin",
        at("Europe/Berlin", 2026, 3, 29, 1),
        False,
        None,
        utc(2026, 3, 29, 1, 30),
    ),
    # Berlin falls back 2026-10-25 03:00 -> 02:00: 02:30 happens twice; the
    # window opens once, at the first (CEST, UTC+2) occurrence.
    "berlin repeated hour opens once": (
        "30 2 * * *",
        1,
        "Europe/Berlin",
        utc(2026, 10, 25, 0),
        False,
        None,
        utc(2026, 10, 25, 0, 30),
    ),
    "berlin after repeated-hour window": (
        "30 2 * * *",
        1,
        "Europe/Berlin",
        utc(2026, 10, 25, 1, 45),
        False,
        None,
        at("Europe/Berlin", 2026, 10, 26, 2, 30),
    ),
    # New York falls back 2026-11-01 02:00 -> 01:00; weekday 09:00 stays 09:00 local.
    "new york weekday start keeps local time after fall back": (
        "0 9 * * 1-5",
        2,
        "America/New_York",
        utc(2026, 10, 30, 20),
        False,
        None,
        at("America/New_York", 2026, 11, 2, 9),
    ),
    "new york open monday after dst": (
        "0 9 * * 1-5",
        2,
        "America/New_York",
        at("America/New_York", 2026, 11, 2, 10),
        True,
        at("America/New_York", 2026, 11, 2, 11),
        at("America/New_York", 2026, 11, 3, 9),
    ),
    # Spring forward 2026-03-08: a 22:00 start on Saturday lasting 6h ends 05:00 EDT.
    "new york window across spring forward": (
        "0 22 * * *",
        6,
        "America/New_York",
        at("America/New_York", 2026, 3, 8, 2, 30),
        True,
        at("America/New_York", 2026, 3, 8, 5),
        at("America/New_York", 2026, 3, 8, 22),
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_state_at(case: str) -> None:
    cron, hours, zone, now, want_open, want_end, want_next_open = CASES[case]
    s = build_schedule(cron, dt.timedelta(hours=hours), zone)
    state = state_at(s, now)
    assert state.open is want_open
    assert state.current_end == want_end
    assert state.next_open == want_next_open
    if want_open:
        assert state.next_close == want_end
        assert state.next_edge() == want_end
    else:
        assert state.next_close == want_next_open + dt.timedelta(hours=hours)
        assert state.next_edge() == want_next_open


def test_extra_opening_merges_with_schedule() -> None:
    extra = ((utc(2026, 6, 1, 20), dt.timedelta(hours=3)),)  # 20:00-23:00 overlaps 22:00 start
    s = build_schedule("0 22 * * *", dt.timedelta(hours=2), "UTC", extra)
    state = state_at(s, utc(2026, 6, 1, 21))
    assert state.open
    assert state.current_end == utc(2026, 6, 2, 0)


def test_extra_opening_alone() -> None:
    extra = ((utc(2026, 12, 24, 0), dt.timedelta(hours=24)),)
    s = build_schedule("0 22 * * 1-5", dt.timedelta(hours=1), "UTC", extra)
    assert state_at(s, utc(2026, 12, 24, 12)).open
    before = state_at(s, utc(2026, 12, 23, 23, 30))
    assert not before.open and before.next_open == utc(2026, 12, 24, 0)


INVALID = {
    "unknown zone": ("0 22 * * *", 1, "Mars/Olympus", "UnknownTimeZone"),
    "minute out of range": ("61 * * * *", 1, "UTC", "InvalidSchedule"),
    "six fields": ("0 0 22 * * *", 1, "UTC", "InvalidSchedule"),
    "duration as long as period": ("0 * * * *", 1, "UTC", "DurationNotShorterThanPeriod"),
    "duration longer than irregular gap": ("0 1,2 * * *", 2, "UTC", "DurationNotShorterThanPeriod"),
}


@pytest.mark.parametrize("case", list(INVALID), ids=list(INVALID))
def test_invalid(case: str) -> None:
    cron, hours, zone, want_reason = INVALID[case]
    with pytest.raises(InvalidWindow) as err:
        build_schedule(cron, dt.timedelta(hours=hours), zone)
    assert err.value.reason == want_reason


def test_every_minute_window_edges_follow_each_other() -> None:
    s = build_schedule("* * * * *", dt.timedelta(seconds=20), "UTC")
    t = utc(2026, 1, 1, 0, 0, 5)
    seen = []
    for _ in range(6):
        st = state_at(s, t)
        seen.append(st.open)
        edge = st.next_edge()
        assert edge is not None and edge > t
        t = edge
    assert seen == [True, False, True, False, True, False]
