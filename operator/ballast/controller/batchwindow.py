"""BatchWindow status: pure computation of open/closed and the next edges."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ballast.api.v1alpha1.batchwindow import BatchWindowSpec, parse_duration
from ballast.controller.conditions import Cond, merge_conditions, ready_from, rfc3339
from ballast.controller.workloadclass import format_validation_error
from ballast.windows import InvalidWindow, WindowSchedule, build_schedule, state_at

# Re-evaluate at least this often even far from an edge, so that spec edits
# and clock corrections are picked up without relying on watch events.
MAX_SLEEP_SECONDS = 5.0


@dataclass
class Tick:
    """One evaluation: the status to write, events on transitions, and when to look again."""

    status: dict[str, Any]
    events: list[tuple[str, str, str]] = field(default_factory=list)
    sleep_seconds: float = MAX_SLEEP_SECONDS


def schedule_from_spec(spec: Mapping[str, Any], now: dt.datetime) -> WindowSchedule:
    """Validate a raw spec into a schedule; raises InvalidWindow with a condition reason."""
    try:
        parsed = BatchWindowSpec.model_validate(dict(spec))
    except ValidationError as exc:
        raise InvalidWindow("InvalidSpec", format_validation_error(exc)) from exc
    extra = tuple(
        (o.start if o.start.tzinfo else o.start.replace(tzinfo=dt.UTC), parse_duration(o.duration))
        for o in parsed.extra_openings or ()
    )
    return build_schedule(
        parsed.schedule, parse_duration(parsed.duration), parsed.time_zone, extra, check_from=now
    )


def tick(
    spec: Mapping[str, Any],
    old_status: Mapping[str, Any] | None,
    generation: int | None,
    now: dt.datetime,
) -> Tick:
    """Compute the window's status at ``now``; events only when ``open`` flips."""
    old = dict(old_status or {})
    try:
        schedule = schedule_from_spec(spec, now)
    except InvalidWindow as exc:
        cond = Cond("ScheduleValid", False, exc.reason, str(exc))
        conditions = merge_conditions(
            old.get("conditions"), [cond, ready_from([cond])], generation=generation, now=now
        )
        events: list[tuple[str, str, str]] = []
        if old.get("observedGeneration") != generation or _ready(old) is not False:
            events.append(("Warning", exc.reason, str(exc)))
        status: dict[str, Any] = {
            "observedGeneration": generation,
            "conditions": conditions,
            "open": None,
            "currentWindowEnd": None,
            "nextOpen": None,
            "nextClose": None,
        }
        return Tick(status, events, MAX_SLEEP_SECONDS)
    state = state_at(schedule, now)
    cond = Cond("ScheduleValid", True, "Valid", "schedule, duration and time zone are valid")
    conditions = merge_conditions(
        old.get("conditions"), [cond, ready_from([cond])], generation=generation, now=now
    )
    status = {
        "observedGeneration": generation,
        "conditions": conditions,
        "open": state.open,
        "currentWindowEnd": rfc3339(state.current_end) if state.current_end else None,
        "nextOpen": rfc3339(state.next_open) if state.next_open else None,
        "nextClose": rfc3339(state.next_close) if state.next_close else None,
    }
    events = []
    if old.get("open") is not None and old.get("open") != state.open:
        if state.open:
            events.append(("Normal", "WindowOpened", f"open until {status['currentWindowEnd']}"))
        else:
            events.append(("Normal", "WindowClosed", f"next opening {status['nextOpen']}"))
    edge = state.next_edge()
    until_edge = (edge - now).total_seconds() if edge else MAX_SLEEP_SECONDS
    # Wake just after the edge so the new state is computed on the right side.
    sleep = min(MAX_SLEEP_SECONDS, max(0.05, until_edge + 0.05))
    return Tick(status, events, sleep)


def _ready(status: Mapping[str, Any]) -> bool | None:
    for c in status.get("conditions") or ():
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return None
