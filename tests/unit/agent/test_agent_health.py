"""The health table (ballast.agent.health), table-driven: pure, no NVML."""

from __future__ import annotations

import pytest

from ballast.agent import health
from ballast.agent.health import HealthState, Signals
from ballast.telemetry.nvml import (
    CLOCKS_HW_POWER_BRAKE_SLOWDOWN,
    CLOCKS_HW_SLOWDOWN,
    CLOCKS_SW_POWER_CAP,
)

CASES = {
    "all quiet": (HealthState(), Signals(clock_reasons=0, ecc_uncorrected=0), ()),
    "no readings at all": (HealthState(), Signals(), ()),
    "lost": (HealthState(), Signals(lost=True), ("gpu_lost",)),
    "fatal xid": (HealthState(frozenset({79})), Signals(), ("xid_79",)),
    "uncorrected ecc": (HealthState(), Signals(ecc_uncorrected=2), ("ecc_uncorrected",)),
    "remap failure": (HealthState(), Signals(remap_failure=True), ("row_remap_failure",)),
    "remap pending": (HealthState(), Signals(remap_pending=True), ("row_remap_pending",)),
    "slowdown too short": (HealthState(slowdown_since=50.0), Signals(clock_reasons=8), ()),
    "slowdown sustained": (
        HealthState(slowdown_since=0.0),
        Signals(clock_reasons=CLOCKS_HW_SLOWDOWN),
        ("hw_slowdown",),
    ),
    "several at once": (
        HealthState(frozenset({48, 95}), slowdown_since=None),
        Signals(lost=True, ecc_uncorrected=1),
        ("gpu_lost", "xid_48", "xid_95", "ecc_uncorrected"),
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_health_table(name: str) -> None:
    state, signals, want_reasons = CASES[name]
    got = health.evaluate(state, signals, now=100.0, slowdown_sustain_s=60.0)
    assert got.reasons == want_reasons
    assert got.healthy == (not want_reasons)


@pytest.mark.parametrize(
    ("xid", "want_fatal"),
    [
        (79, True),
        (48, True),
        (95, True),
        (119, True),
        (13, False),
        (31, False),
        (43, False),
        (999, False),
    ],
)
def test_xid_classes(xid: int, want_fatal: bool) -> None:
    state = health.record_xid(HealthState(), xid)
    assert (xid in state.fatal_xids) == want_fatal
    assert health.is_fatal_xid(xid) == want_fatal
    assert not (health.APPLICATION_XIDS & health.FATAL_XIDS.keys())


def test_slowdown_must_be_sustained_and_clears() -> None:
    hw = Signals(clock_reasons=CLOCKS_HW_POWER_BRAKE_SLOWDOWN)
    state = health.advance(HealthState(), hw, now=10.0)
    assert state.slowdown_since == 10.0
    assert health.evaluate(state, hw, 69.0, 60.0).healthy
    state = health.advance(state, hw, now=70.0)
    assert state.slowdown_since == 10.0  # the start is kept while it lasts
    assert health.evaluate(state, hw, 70.0, 60.0).reasons == ("hw_slowdown",)
    # A missing reading neither starts nor ends the slowdown.
    assert health.advance(state, Signals(), now=80.0).slowdown_since == 10.0
    # Software power capping is not a hardware slowdown; it ends the episode.
    sw = Signals(clock_reasons=CLOCKS_SW_POWER_CAP)
    state = health.advance(state, sw, now=90.0)
    assert state.slowdown_since is None
    assert health.evaluate(state, sw, 200.0, 60.0).healthy


def test_fatal_xid_is_sticky() -> None:
    state = health.record_xid(HealthState(), 79)
    state = health.advance(state, Signals(clock_reasons=0), now=1000.0)
    assert health.evaluate(state, Signals(clock_reasons=0), 1000.0).reasons == ("xid_79",)
