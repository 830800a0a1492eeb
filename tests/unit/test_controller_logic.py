"""Pure reconcile logic of BatchWindow and GPUQuota, driven by a fake clock."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ballast.clock import FakeClock
from ballast.controller import batchwindow as batchwindow_logic
from ballast.controller.batchwindow import MAX_SLEEP_SECONDS, tick
from ballast.controller.gpuquota import quota_status
from ballast.tenancy import QuotaClaim, owners

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


def quota(name: str, created: str, namespaces: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"namespaces": namespaces, "gpus": 4, **spec},
    }


def test_quota_namespace_conflict_and_cohort() -> None:
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    older = quota("older", "2026-01-01T00:00:00Z", ["a", "b"], cohort="c")
    newer = quota("newer", "2026-02-01T00:00:00Z", ["b"], cohort="c")
    quotas = {"older": older, "newer": newer}
    status, events = quota_status("newer", newer["spec"], None, 1, quotas, now)
    by_type = {c["type"]: c for c in status["conditions"]}
    assert by_type["Ready"]["reason"] == "NamespaceConflict"
    assert "b (owned by GPUQuota older" in by_type["Ready"]["message"]
    assert by_type["CohortFormed"]["message"] == "cohort c: older"
    assert [e[1] for e in events] == ["NamespaceConflict"]
    # The older claim stands, whatever order the quotas were seen in.
    kept, _ = quota_status("older", older["spec"], None, 1, {"newer": newer, "older": older}, now)
    assert {c["type"]: c["status"] for c in kept["conditions"]}["Ready"] == "True"
    ok, _ = quota_status("newer", {"namespaces": ["z"], "gpus": 2}, None, 1, {"older": older}, now)
    assert {c["type"]: c["status"] for c in ok["conditions"]}["Ready"] == "True"


def test_quota_conflict_agrees_with_tenancy_owners() -> None:
    """Operator and scheduler use one rule: oldest creationTimestamp, then name."""
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    same = "2026-01-01T00:00:00Z"
    quotas = {
        "b-quota": quota("b-quota", same, ["shared"]),
        "a-quota": quota("a-quota", same, ["shared"]),
        "late": quota("late", "2026-03-01T00:00:00Z", ["shared", "own"]),
    }
    owner = owners(QuotaClaim.from_object(q) for q in quotas.values())
    assert owner == {"shared": "a-quota", "own": "late"}
    ready = {
        n: next(
            c
            for c in quota_status(n, q["spec"], None, 1, quotas, now)[0]["conditions"]
            if c["type"] == "Ready"
        )
        for n, q in quotas.items()
    }
    assert ready["a-quota"]["status"] == "True"  # a tie is broken by name
    assert ready["b-quota"]["reason"] == "NamespaceConflict"
    assert ready["late"]["reason"] == "NamespaceConflict"
    assert "shared (owned by GPUQuota a-quota" in ready["late"]["message"]
    # Once the owner goes, the next-oldest claim owns the namespace.
    del quotas["a-quota"]
    status, _ = quota_status("b-quota", quotas["b-quota"]["spec"], None, 1, quotas, now)
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"


UNCOMPUTABLE = {
    "cron that never fires": {"schedule": "0 0 30 2 *", "duration": "1h"},
    "extra opening in 9999": {
        **SPEC,
        "extraOpenings": [{"start": "9999-12-31T23:00:00Z", "duration": "24h"}],
    },
    "extra opening overflowing with its offset": {
        **SPEC,
        "extraOpenings": [{"start": "9999-12-31T23:00:00-05:00", "duration": "1h"}],
    },
    "offset +99:99": {
        **SPEC,
        "extraOpenings": [{"start": "2026-12-24T00:00:00+99:99", "duration": "1h"}],
    },
    "zone that is a directory": {**SPEC, "timeZone": "Europe"},
    "huge duration": {**SPEC, "duration": "99999999999999h"},
    "not a mapping": "0 22 * * *",
}


@pytest.mark.parametrize("case", list(UNCOMPUTABLE), ids=list(UNCOMPUTABLE))
def test_window_tick_never_raises_on_uncomputable_windows(case: str) -> None:
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    result = tick(UNCOMPUTABLE[case], None, 1, now)  # type: ignore[arg-type]
    ready = next(c for c in result.status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert ready["reason"] in ("InvalidSchedule", "UnknownTimeZone", "InvalidDuration")
    assert ready["message"]
    assert result.status["open"] is None
    assert [e[0] for e in result.events] == ["Warning"]


def test_window_tick_reports_a_state_that_cannot_be_computed_at_now() -> None:
    """A valid schedule evaluated where datetime runs out: closed, InvalidSchedule."""
    now = dt.datetime(9999, 12, 31, 23, tzinfo=dt.UTC)
    result = tick(SPEC, None, 1, now)
    ready = next(c for c in result.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSchedule")


def test_window_tick_survives_any_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: Any) -> Any:
        raise ZeroDivisionError("surprise")

    monkeypatch.setattr(batchwindow_logic, "state_at", boom)
    result = tick(SPEC, None, 1, dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    ready = next(c for c in result.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSchedule")
    assert "surprise" in ready["message"]
