"""StateCache answers as state_at does, and runs croniter once per edge, not per question."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ballast import windows
from ballast.windows import StateCache, WindowState, build_schedule, state_at

UTC = dt.UTC
START = dt.datetime(2026, 3, 28, tzinfo=UTC)  # Europe/Berlin's spring-forward night is ahead

schedules = st.sampled_from(
    [
        ("0 22 * * *", dt.timedelta(hours=8), "UTC", ()),
        ("*/5 * * * *", dt.timedelta(minutes=2), "UTC", ()),
        ("30 1 * * *", dt.timedelta(hours=2), "Europe/Berlin", ()),
        ("0 22 * * 1-5", dt.timedelta(hours=1), "America/New_York",
         ((START + dt.timedelta(hours=30), dt.timedelta(hours=6)),)),
    ]
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    schedules,
    st.lists(st.integers(min_value=-600, max_value=3 * 3600), min_size=1, max_size=40),
)
def test_the_cache_answers_what_state_at_answers(
    sched: tuple[str, dt.timedelta, str, tuple[tuple[dt.datetime, dt.timedelta], ...]],
    steps: list[int],
) -> None:
    """Any sequence of instants, forwards and (sometimes) backwards."""
    s = build_schedule(*sched)
    cache = StateCache(s)
    t = START
    for step in steps:
        t += dt.timedelta(seconds=step)
        assert cache.at(t) == state_at(s, t)


def test_a_scheduling_loop_pays_for_croniter_once_per_edge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An hour of cycles every 50 ms over a 5-minute window: one computation per edge."""
    schedule = build_schedule("*/5 * * * *", dt.timedelta(minutes=2), "UTC")
    calls = []
    real = windows.state_at

    def counting(s: windows.WindowSchedule, now: dt.datetime) -> WindowState:
        calls.append(now)
        return real(s, now)

    monkeypatch.setattr(windows, "state_at", counting)
    cache = StateCache(schedule)
    t, opened = START + dt.timedelta(seconds=1), 0
    was_open = None
    for _ in range(72_000):
        st_ = cache.at(t)
        opened += st_.open and was_open is False
        was_open = st_.open
        t += dt.timedelta(milliseconds=50)
    # From 00:00:01 (open) to 01:00:01: openings at 00:05 ... 01:00, closings at
    # 00:02 ... 00:57, all seen; one computation at the start and one per edge.
    assert opened == 12
    assert len(calls) == 1 + 12 + 12
