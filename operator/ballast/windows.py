"""BatchWindow arithmetic: is a window open at an instant, and when does it change.

Pure functions over a ``WindowSchedule``; the operator (status) and the
scheduler (admission gate) both use them with a ``Clock``'s ``now``.

Semantics, chosen to match what a person reading the cron expects:

* The cron expression is read in the window's IANA time zone, on wall-clock
  time: ``0 22 * * *`` starts at 22:00 local time on both sides of a
  daylight-saving change.
* A start that falls into a spring-forward gap (02:30 on the night clocks
  jump from 02:00 to 03:00) happens at the instant the old offset names,
  which is just after the gap (03:30). A start in a fall-back hour that
  occurs twice happens once, at its first occurrence.
* The duration is elapsed time: an 8h window that spans a DST change is open
  for 8 real hours, so its local closing time moves by the shift.
* Extra openings are absolute intervals added to the schedule; overlapping
  openings merge.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, croniter

# Enough starts to find the shortest gap of any five-field expression: the
# irregular ones (day-of-month vs day-of-week, month lengths) repeat yearly.
_PERIOD_SAMPLE_DAYS = 400
_PERIOD_SAMPLE_MAX = 2000


@dataclass(frozen=True, slots=True)
class WindowSchedule:
    """A validated window definition."""

    cron: str
    duration: dt.timedelta
    tz: ZoneInfo
    extra: tuple[tuple[dt.datetime, dt.timedelta], ...] = ()


@dataclass(frozen=True, slots=True)
class WindowState:
    """Where a window stands at one instant."""

    open: bool
    current_end: dt.datetime | None
    next_open: dt.datetime | None
    next_close: dt.datetime | None

    def next_edge(self) -> dt.datetime | None:
        """The next instant at which ``open`` flips."""
        return self.current_end if self.open else self.next_open


class InvalidWindow(ValueError):
    """The definition cannot be used; ``reason`` is a CamelCase condition reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def build_schedule(
    cron: str,
    duration: dt.timedelta,
    time_zone: str,
    extra: tuple[tuple[dt.datetime, dt.timedelta], ...] = (),
    *,
    check_from: dt.datetime | None = None,
) -> WindowSchedule:
    """Validate what the CRD schema cannot and return the schedule.

    Raises ``InvalidWindow`` for an unknown zone, a cron expression croniter
    rejects (``61 * * * *``), or a duration not shorter than the shortest
    gap between two starts (the window would never close).
    """
    try:
        tz = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidWindow(
            "UnknownTimeZone", f"timeZone {time_zone!r} is not an IANA zone"
        ) from exc
    if len(cron.split()) != 5:
        raise InvalidWindow("InvalidSchedule", f"schedule {cron!r} needs exactly five cron fields")
    try:
        croniter(cron)
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        raise InvalidWindow(
            "InvalidSchedule", f"schedule {cron!r} is not valid cron: {exc}"
        ) from exc
    if duration <= dt.timedelta(0):
        raise InvalidWindow("InvalidDuration", "duration must be positive")
    period = shortest_period(cron, tz, check_from or dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    if period is not None and duration >= period:
        raise InvalidWindow(
            "DurationNotShorterThanPeriod",
            f"duration {duration} is not shorter than the shortest time between two starts "
            f"of {cron!r} ({period}); the window would never close",
        )
    return WindowSchedule(cron, duration, tz, extra)


def shortest_period(cron: str, tz: ZoneInfo, start: dt.datetime) -> dt.timedelta | None:
    """Smallest elapsed time between consecutive starts over about a year (None if < 2 starts)."""
    it = croniter(cron, _local_naive(start, tz))
    horizon = start + dt.timedelta(days=_PERIOD_SAMPLE_DAYS)
    prev: dt.datetime | None = None
    best: dt.timedelta | None = None
    for _ in range(_PERIOD_SAMPLE_MAX):
        t = _localize(it.get_next(dt.datetime), tz)
        if prev is not None:
            gap = t - prev
            if gap > dt.timedelta(0) and (best is None or gap < best):
                best = gap
        if t > horizon:
            break
        prev = t
    return best


def _local_naive(t: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    return t.astimezone(tz).replace(tzinfo=None)


def _localize(naive: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """Wall time → aware instant: fold=0 picks the first of a repeated hour and
    maps a skipped wall time just past the gap (see module docstring)."""
    return naive.replace(tzinfo=tz, fold=0).astimezone(dt.UTC)


def _cron_starts_before(s: WindowSchedule, now: dt.datetime, count: int) -> list[dt.datetime]:
    # Step back from one second after ``now`` so that a start exactly at
    # ``now`` counts as already started.
    it = croniter(s.cron, _local_naive(now + dt.timedelta(seconds=1), s.tz))
    return [_localize(it.get_prev(dt.datetime), s.tz) for _ in range(count)]


def _cron_start_after(s: WindowSchedule, now: dt.datetime) -> dt.datetime:
    it = croniter(s.cron, _local_naive(now, s.tz))
    for _ in range(8):
        t = _localize(it.get_next(dt.datetime), s.tz)
        if t > now:
            return t
    raise RuntimeError("cron produced no start after now")  # pragma: no cover


def state_at(s: WindowSchedule, now: dt.datetime) -> WindowState:
    """Open/closed at ``now`` and the next transitions."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    intervals = [(t, t + s.duration) for t in _cron_starts_before(s, now, 2)]
    intervals += [(start, start + d) for start, d in s.extra]
    current_end: dt.datetime | None = None
    for start, end in intervals:
        if start <= now < end:
            current_end = end if current_end is None else max(current_end, end)
    # Merge openings that overlap or touch the current one.
    changed = current_end is not None
    while changed and current_end is not None:
        changed = False
        for start, end in [*intervals, *_upcoming(s, now, current_end)]:
            if start <= current_end < end:
                current_end, changed = end, True
    search_from = current_end or now
    next_cron = _cron_start_after(s, search_from - dt.timedelta(microseconds=1))
    if next_cron <= search_from:
        next_cron = _cron_start_after(s, search_from)
    candidates = [next_cron] + [st for st, _ in s.extra if st > search_from]
    next_open = min(candidates)
    if current_end is not None:
        return WindowState(True, current_end, next_open, current_end)
    return WindowState(False, None, next_open, next_open + s.duration)


def _upcoming(
    s: WindowSchedule, now: dt.datetime, until: dt.datetime
) -> list[tuple[dt.datetime, dt.datetime]]:
    out = []
    t = now
    for _ in range(16):
        t = _cron_start_after(s, t)
        if t > until:
            break
        out.append((t, t + s.duration))
    return out
