"""Pure reconcile logic of BatchWindow and GPUQuota, driven by a fake clock."""

from __future__ import annotations

import datetime as dt

from ballast.clock import FakeClock
from ballast.controller.batchwindow import MAX_SLEEP_SECONDS, tick
from ballast.controller.gpuquota import quota_status

SPEC = {"schedule": "0 22 * * *", "duration": "8h", "timeZone": "Europe/Berlin"}


def test_window_tick_follows_the_clock_across_an_edge() -> None:
    clock = FakeClock(dt.datetime(2026, 6, 1, 19, 59, 58, tzinfo=dt.UTC))  # 21:59:58 in Berlin
    first = tick(SPEC, None, 1, clock.now())
    assert first.status["open"] is False
    assert first.status["nextOpen"] == "2026-06-01T20:00:00Z"
    assert first.events == []  # no transition seen yet
    assert 0 < first.sleep_seconds <= 2.1  # wakes just after the edge
    clock.advance(first.sleep_seconds)
    second = tick(SPEC, first.status, 1, clock.now())
    assert second.status["open"] is True
    assert second.status["currentWindowEnd"] == "2026-06-02T04:00:00Z"
    assert [e[1] for e in second.events] == ["WindowOpened"]
    assert second.sleep_seconds == MAX_SLEEP_SECONDS
    # Ready's transition time does not move while nothing about it changes.
    ready = next(c for c in second.status["conditions"] if c["type"] == "Ready")
    assert ready["lastTransitionTime"] == "2026-06-01T19:59:58Z"


def test_window_tick_reports_invalid_schedule_once() -> None:
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    bad = {**SPEC, "schedule": "61 * * * *"}
    first = tick(bad, None, 1, now)
    ready = next(c for c in first.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSchedule")
    assert [e[1] for e in first.events] == ["InvalidSchedule"]
    again = tick(bad, first.status, 1, now)
    assert again.events == []  # same generation, already reported


def test_quota_namespace_conflict_and_cohort() -> None:
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    others = {"older": {"namespaces": ["a", "b"], "gpus": 4, "cohort": "c"}}
    status, events = quota_status(
        "newer", {"namespaces": ["b"], "gpus": 2, "cohort": "c"}, None, 1, others, now
    )
    by_type = {c["type"]: c for c in status["conditions"]}
    assert by_type["Ready"]["reason"] == "NamespaceConflict"
    assert "b (also in GPUQuota older)" in by_type["Ready"]["message"]
    assert by_type["CohortFormed"]["message"] == "cohort c: older"
    assert [e[1] for e in events] == ["NamespaceConflict"]
    ok, _ = quota_status("newer", {"namespaces": ["z"], "gpus": 2}, None, 1, others, now)
    assert {c["type"]: c["status"] for c in ok["conditions"]}["Ready"] == "True"
