"""BatchWindow status: pure computation of open/closed and the next edges."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ballast.controller.conditions import (
    Cond,
    kstatus_conditions,
    merge_conditions,
    ready_from,
    rfc3339,
)
from ballast.windows import InvalidWindow, schedule_from_spec, state_at

log = logging.getLogger(__name__)

# Re-evaluate at least this often even far from an edge, so that spec edits
# and clock corrections are picked up without relying on watch events.
MAX_SLEEP_SECONDS = 5.0


@dataclass
class Tick:
    """One evaluation: the status to write, events on transitions, and when to look again."""

    status: dict[str, Any]
    events: list[tuple[str, str, str]] = field(default_factory=list)
    sleep_seconds: float = MAX_SLEEP_SECONDS


def tick(
    spec: Mapping[str, Any],
    old_status: Mapping[str, Any] | None,
    generation: int | None,
    now: dt.datetime,
) -> Tick:
    """Compute the window's status at ``now``; events only when ``open`` flips.

    Never raises: a window that cannot be computed, for whatever reason, is
    ``Ready=False`` (``InvalidSchedule`` unless a more precise reason is
    known) with a Warning event once per generation.
    """
    old = dict(old_status or {})
    try:
        return _tick(spec, old, generation, now)
    except InvalidWindow as exc:
        return _invalid(old, generation, now, exc.reason, str(exc))
    except Exception as exc:  # the daemon must outlive any arithmetic surprise
        log.exception("batchwindow tick failed")
        return _invalid(
            old, generation, now, "InvalidSchedule", f"the window cannot be computed: {exc}"
        )


def _invalid(
    old: Mapping[str, Any], generation: int | None, now: dt.datetime, reason: str, message: str
) -> Tick:
    cond = Cond("ScheduleValid", False, reason, message)
    ready = ready_from([cond])
    conditions = merge_conditions(
        old.get("conditions"),
        [cond, ready, *kstatus_conditions(ready)],
        generation=generation,
        now=now,
    )
    events: list[tuple[str, str, str]] = []
    if old.get("observedGeneration") != generation or _ready(old) is not False:
        events.append(("Warning", reason, message))
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": conditions,
        "open": None,
        "currentWindowEnd": None,
        "nextOpen": None,
        "nextClose": None,
    }
    return Tick(status, events, MAX_SLEEP_SECONDS)


def _tick(
    spec: Mapping[str, Any], old: Mapping[str, Any], generation: int | None, now: dt.datetime
) -> Tick:
    schedule = schedule_from_spec(spec, now)
    state = state_at(schedule, now)
    if state.error is not None:
        raise InvalidWindow("InvalidSchedule", state.error)
    cond = Cond("ScheduleValid", True, "Valid", "schedule, duration and time zone are valid")
    ready = ready_from([cond])
    conditions = merge_conditions(
        old.get("conditions"),
        [cond, ready, *kstatus_conditions(ready)],
        generation=generation,
        now=now,
    )
    status = {
        "observedGeneration": generation,
        "conditions": conditions,
        "open": state.open,
        "currentWindowEnd": rfc3339(state.current_end) if state.current_end else None,
        "nextOpen": rfc3339(state.next_open) if state.next_open else None,
        "nextClose": rfc3339(state.next_close) if state.next_close else None,
    }
    events: list[tuple[str, str, str]] = []
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


__all__ = ["MAX_SLEEP_SECONDS", "Tick", "schedule_from_spec", "tick"]
