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

Failure contract (both processes rely on it; a window is tenant-visible input):

* ``schedule_from_spec`` and ``build_schedule`` raise only ``InvalidWindow``,
  whatever the spec holds: a cron that parses but never fires (``0 0 30 2 *``),
  a date that overflows ``datetime`` (an extra opening in the year 9999), an
  unreadable zone. The schedule is also evaluated once at ``now`` before it is
  returned, so a schedule that is handed out can be computed.
* ``state_at`` never raises for an aware ``now``. If the state cannot be
  computed at that instant (time has run past what ``datetime`` or croniter
  can represent), it returns a *closed* state with ``error`` set and no next
  edge: callers hold the window's work and report ``InvalidSchedule``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter
from pydantic import ValidationError

from ballast.api.v1alpha1.batchwindow import (
    EXTRA_OPENING_EARLIEST,
    EXTRA_OPENING_LATEST,
    MAX_WINDOW_DURATION,
    BatchWindowSpec,
    parse_duration,
)
from ballast.api.v1alpha1.common import format_validation_error

# Enough starts to find the shortest gap of any five-field expression: the
# irregular ones (day-of-month vs day-of-week, month lengths) repeat yearly.
_PERIOD_SAMPLE_DAYS = 400
_PERIOD_SAMPLE_MAX = 2000

# The schema's bounds (CEL and pattern), re-checked here for objects stored
# before they existed: nothing outside them reaches datetime arithmetic.
EARLIEST = EXTRA_OPENING_EARLIEST
LATEST = EXTRA_OPENING_LATEST
MAX_DURATION = MAX_WINDOW_DURATION


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
    error: str | None = None  # set when the state could not be computed (then closed)

    def next_edge(self) -> dt.datetime | None:
        """The next instant at which ``open`` flips (None when unknown)."""
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

    Raises ``InvalidWindow`` (and nothing else) for an unknown zone, a cron
    expression croniter rejects (``61 * * * *``) or that never fires
    (``0 0 30 2 *``), a duration not shorter than the shortest gap between two
    starts (the window would never close), extra openings outside
    ``EARLIEST``..``LATEST``, or any arithmetic that cannot be carried out.
    """
    try:
        tz = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError, OSError, TypeError) as exc:
        raise InvalidWindow(
            "UnknownTimeZone", f"timeZone {time_zone!r} is not an IANA zone"
        ) from exc
    if len(cron.split()) != 5:
        raise InvalidWindow("InvalidSchedule", f"schedule {cron!r} needs exactly five cron fields")
    try:
        croniter(cron)
    except (CroniterError, ValueError, KeyError, TypeError) as exc:
        raise InvalidWindow(
            "InvalidSchedule", f"schedule {cron!r} is not valid cron: {exc}"
        ) from exc
    if duration <= dt.timedelta(0):
        raise InvalidWindow("InvalidDuration", "duration must be positive")
    if duration > MAX_DURATION:
        raise InvalidWindow("InvalidDuration", f"duration {duration} is longer than {MAX_DURATION}")
    for n, (start, length) in enumerate(extra):
        if start.tzinfo is None or not EARLIEST <= start <= LATEST:
            raise InvalidWindow(
                "InvalidSchedule",
                f"extraOpenings[{n}].start {start.isoformat()} is outside "
                f"{EARLIEST.year}..{LATEST.year - 1} or has no offset",
            )
        if not dt.timedelta(0) < length <= MAX_DURATION:
            raise InvalidWindow(
                "InvalidSchedule", f"extraOpenings[{n}].duration must be in (0, {MAX_DURATION}]"
            )
    start = check_from or dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    try:
        period = shortest_period(cron, tz, start)
    except (CroniterError, ArithmeticError, ValueError) as exc:
        raise InvalidWindow(
            "InvalidSchedule", f"schedule {cron!r} never fires (no such date?): {exc}"
        ) from exc
    if period is not None and duration >= period:
        raise InvalidWindow(
            "DurationNotShorterThanPeriod",
            f"duration {duration} is not shorter than the shortest time between two starts "
            f"of {cron!r} ({period}); the window would never close",
        )
    schedule = WindowSchedule(cron, duration, tz, extra)
    state = state_at(schedule, start)
    if state.error is not None:
        raise InvalidWindow("InvalidSchedule", state.error)
    return schedule


def schedule_from_spec(spec: Mapping[str, Any], now: dt.datetime) -> WindowSchedule:
    """Validate a raw BatchWindow spec into a schedule, evaluated once at ``now``.

    This is the boundary where a stored object becomes a schedule: it raises
    ``InvalidWindow`` and never any other exception, whatever ``spec`` holds.
    The reason is ``InvalidSchedule`` (with the field path in the message)
    for anything the API model rejects or that cannot be computed, and
    ``UnknownTimeZone``, ``InvalidDuration`` or ``DurationNotShorterThanPeriod``
    for those specific problems.
    """
    try:
        parsed = BatchWindowSpec.model_validate(dict(spec))
    except ValidationError as exc:
        raise InvalidWindow("InvalidSchedule", format_validation_error(exc)) from exc
    except Exception as exc:  # a malformed mapping or an overflow while parsing
        raise InvalidWindow("InvalidSchedule", f"spec cannot be read: {exc}") from exc
    try:
        extra = tuple(
            (_aware(o.start), parse_duration(o.duration)) for o in parsed.extra_openings or ()
        )
        return build_schedule(
            parsed.schedule,
            parse_duration(parsed.duration),
            parsed.time_zone,
            extra,
            check_from=now,
        )
    except InvalidWindow:
        raise
    except Exception as exc:  # arithmetic the checks above did not foresee
        raise InvalidWindow("InvalidSchedule", f"the window cannot be computed: {exc}") from exc


def _aware(t: dt.datetime) -> dt.datetime:
    return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


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
    """Open/closed at ``now`` and the next transitions; never raises for an aware ``now``.

    When the state cannot be computed (``datetime`` or croniter out of range)
    the result is closed, has no next edge, and ``error`` says why.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")  # a caller's bug, not bad input
    try:
        return _state_at(s, now)
    except (CroniterError, ArithmeticError, ValueError, RuntimeError) as exc:
        return WindowState(
            False, None, None, None, error=f"window state cannot be computed at {now}: {exc}"
        )


class StateCache:
    """:func:`state_at` for one schedule, recomputed only when ``now`` leaves
    the span over which the last answer holds.

    A window's state is the same at every instant from the one it was
    computed at up to its next edge (the opening or closing it names), so a
    caller that asks on every scheduling cycle pays for croniter once per
    edge, not once per cycle. An answer with no next edge holds for good; an
    error is not kept (the caller replaces the schedule). ``now`` going back
    in time recomputes.
    """

    __slots__ = ("_since", "_state", "schedule")

    def __init__(self, schedule: WindowSchedule) -> None:
        self.schedule = schedule
        self._since: dt.datetime | None = None
        self._state: WindowState | None = None

    def at(self, now: dt.datetime) -> WindowState:
        """The window's state at ``now`` (as :func:`state_at`)."""
        st, since = self._state, self._since
        if st is not None and since is not None and since <= now:
            edge = st.next_edge()
            if edge is None or now < edge:
                return st
        st = state_at(self.schedule, now)
        if st.error is None:
            self._state, self._since = st, now
        return st


def _state_at(s: WindowSchedule, now: dt.datetime) -> WindowState:
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
