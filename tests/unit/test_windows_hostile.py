"""Window arithmetic never raises out of a process, whatever a BatchWindow holds.

The contract both the operator and the scheduler rely on:
``schedule_from_spec`` raises only ``InvalidWindow``; ``state_at`` never
raises for an aware ``now`` (a state it cannot compute is closed, with
``error`` set and no next edge).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ballast.windows import InvalidWindow, build_schedule, schedule_from_spec, state_at

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)

cron_field = st.one_of(
    st.sampled_from(["*", "*/5", "0", "30", "29", "31", "59", "61", "1-5", "mon", "feb", "L", "?"]),
    st.integers(0, 99).map(str),
    st.text("0123456789*,/-", min_size=1, max_size=6),
)
crons = st.one_of(
    st.lists(cron_field, min_size=5, max_size=5).map(" ".join),
    st.sampled_from(["0 0 30 2 *", "0 0 31 4 *", "0 0 29 2 *", "0 0 31 2 1", "* * * * *"]),
    st.text(max_size=20),
)
durations = st.one_of(
    st.sampled_from(["1h", "8h", "20s", "0s", "8784h", "8785h", "9999h", "", "1h30m"]),
    st.from_regex(r"\A([0-9]{1,14}h)?([0-9]{1,8}m)?([0-9]{1,8}s)?\Z", fullmatch=True),
)
offsets = st.sampled_from(["Z", "+00:00", "-05:00", "+14:00", "+99:99", "-23:59", ""])
starts = st.one_of(
    st.builds(
        lambda t, o: t.strftime("%Y-%m-%dT%H:%M:%S") + o,
        st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)),
        offsets,
    ),
    st.text(max_size=30),
)
zones = st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Europe", "", "Mars/Olympus"])
specs = st.fixed_dictionaries(
    {"schedule": crons, "duration": durations},
    optional={
        "timeZone": zones,
        "extraOpenings": st.lists(
            st.fixed_dictionaries({"start": starts, "duration": durations}), max_size=3
        ),
        "onClose": st.sampled_from(["Finish", "Pause"]),
    },
)
instants = st.datetimes(
    min_value=dt.datetime(1, 1, 2),
    max_value=dt.datetime(9999, 12, 30),
    timezones=st.just(dt.UTC),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs, now=st.one_of(st.just(NOW), instants))
def test_schedule_from_spec_raises_only_invalid_window(
    spec: dict[str, Any], now: dt.datetime
) -> None:
    try:
        schedule = schedule_from_spec(spec, now)
    except InvalidWindow as exc:
        assert exc.reason and str(exc)
        return
    state = state_at(schedule, now)
    # A schedule handed out was computable at ``now``.
    assert state.error is None
    assert state.next_open is not None and state.next_open > now


@settings(max_examples=50, deadline=None)
@given(now=instants)
def test_state_at_never_raises(now: dt.datetime) -> None:
    schedule = schedule_from_spec(
        {
            "schedule": "0 22 * * 1-5",
            "duration": "8h",
            "timeZone": "Europe/Berlin",
            "extraOpenings": [{"start": "2199-12-31T23:00:00Z", "duration": "8784h"}],
        },
        NOW,
    )
    state = state_at(schedule, now)
    if state.error is not None:
        assert not state.open and state.next_edge() is None
    else:
        edge = state.next_edge()
        assert edge is not None and edge > now


NEVER_FIRES = ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 6 *", "0 0 30,31 2 *"]


@pytest.mark.parametrize("cron", NEVER_FIRES)
def test_cron_that_never_fires_is_invalid(cron: str) -> None:
    with pytest.raises(InvalidWindow) as err:
        build_schedule(cron, dt.timedelta(hours=1), "UTC", check_from=NOW)
    assert err.value.reason == "InvalidSchedule"
    assert "never fires" in str(err.value)


def test_leap_day_cron_is_valid_and_rare() -> None:
    schedule = build_schedule("0 0 29 2 *", dt.timedelta(hours=1), "UTC", check_from=NOW)
    assert state_at(schedule, NOW).next_open == dt.datetime(2028, 2, 29, tzinfo=dt.UTC)


def test_extra_opening_outside_the_supported_years_is_invalid() -> None:
    for start in ("9999-12-31T23:00:00Z", "1900-01-01T00:00:00Z"):
        with pytest.raises(InvalidWindow) as err:
            schedule_from_spec(
                {
                    "schedule": "0 22 * * *",
                    "duration": "1h",
                    "extraOpenings": [{"start": start, "duration": "1h"}],
                },
                NOW,
            )
        assert "between 1970-01-01 and 2199-12-31" in str(err.value)
        assert "extraOpenings" in str(err.value)  # the field path


def test_state_at_reports_what_it_cannot_compute() -> None:
    schedule = build_schedule("0 22 * * *", dt.timedelta(hours=1), "UTC")
    state = state_at(schedule, dt.datetime(9999, 12, 31, 23, tzinfo=dt.UTC))
    assert state.error and not state.open
    assert state.next_open is None and state.next_edge() is None
