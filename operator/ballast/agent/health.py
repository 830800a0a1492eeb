"""GPU health from NVML signals: the one documented table (docs/agent.md), pure.

A GPU is unhealthy when any row below holds; the reasons say which:

=====================  =========================================================
reason                 condition
=====================  =========================================================
``gpu_lost``           an NVML call answered GPU_IS_LOST (fell off the bus)
``xid_<n>``            a fatal XID (``FATAL_XIDS``) was seen since the agent
                       started; sticky: a GPU reset restarts the driver and the
                       agent with it
``ecc_uncorrected``    the volatile uncorrected (double-bit) ECC count is > 0
``row_remap_failure``  the row remapper ran out of spare rows
``row_remap_pending``  a row remap is pending (takes effect after a GPU reset)
``hw_slowdown``        a hardware slowdown clock-event reason (HW slowdown,
                       HW thermal, HW power brake) held for at least the
                       sustain window (default 60 s)
=====================  =========================================================

XIDs in ``APPLICATION_XIDS`` are caused by the user's program (illegal address,
a killed context, ...) and never mark the GPU; any other XID is counted and
exported but does not by itself change health.
"""

from __future__ import annotations

from dataclasses import dataclass

from ballast.telemetry.nvml import CLOCKS_HW_ANY

# XIDs that mean the GPU needs a reset or replacement (NVIDIA XID catalogue).
FATAL_XIDS: dict[int, str] = {
    48: "double-bit ECC error",
    61: "internal micro-controller breakpoint/warning",
    62: "internal micro-controller halt",
    64: "ECC page retirement or row-remap recording failure",
    74: "NVLink error",
    79: "GPU has fallen off the bus",
    92: "high single-bit ECC error rate",
    94: "contained ECC error",
    95: "uncontained ECC error",
    119: "GSP RPC timeout",
    120: "GSP error",
    140: "unrecovered ECC error",
}

# XIDs raised by a faulty application, not a faulty GPU (the device plugin skips the same set).
APPLICATION_XIDS = frozenset({13, 31, 43, 45, 68, 109})

DEFAULT_SLOWDOWN_SUSTAIN_S = 60.0


@dataclass(frozen=True, slots=True)
class Signals:
    """What one collection read for one GPU; None where the call did not answer."""

    lost: bool = False
    clock_reasons: int | None = None
    ecc_uncorrected: int | None = None
    remap_pending: bool | None = None
    remap_failure: bool | None = None


@dataclass(frozen=True, slots=True)
class Health:
    """Healthy or not, and the table rows that said so."""

    healthy: bool
    reasons: tuple[str, ...] = ()


HEALTHY = Health(True)


@dataclass(frozen=True, slots=True)
class HealthState:
    """What health remembers between collections for one GPU."""

    fatal_xids: frozenset[int] = frozenset()
    slowdown_since: float | None = None  # monotonic seconds when a HW slowdown began


def is_fatal_xid(xid: int) -> bool:
    """Whether ``xid`` marks the GPU unhealthy."""
    return xid in FATAL_XIDS


def record_xid(state: HealthState, xid: int) -> HealthState:
    """The state after XID ``xid`` was seen (only fatal ones are remembered)."""
    if not is_fatal_xid(xid) or xid in state.fatal_xids:
        return state
    return HealthState(state.fatal_xids | {xid}, state.slowdown_since)


def advance(state: HealthState, signals: Signals, now: float) -> HealthState:
    """Fold one collection's signals into the state (tracks when a HW slowdown began)."""
    slowing = signals.clock_reasons is not None and bool(signals.clock_reasons & CLOCKS_HW_ANY)
    since: float | None
    if slowing:
        since = state.slowdown_since if state.slowdown_since is not None else now
    elif signals.clock_reasons is None:
        since = state.slowdown_since  # no reading: neither start nor end a slowdown
    else:
        since = None
    if since == state.slowdown_since:
        return state
    return HealthState(state.fatal_xids, since)


def evaluate(
    state: HealthState,
    signals: Signals,
    now: float,
    slowdown_sustain_s: float = DEFAULT_SLOWDOWN_SUSTAIN_S,
) -> Health:
    """Apply the health table to ``state`` (already advanced) and the latest ``signals``."""
    reasons: list[str] = []
    if signals.lost:
        reasons.append("gpu_lost")
    reasons.extend(f"xid_{x}" for x in sorted(state.fatal_xids))
    if signals.ecc_uncorrected:
        reasons.append("ecc_uncorrected")
    if signals.remap_failure:
        reasons.append("row_remap_failure")
    if signals.remap_pending:
        reasons.append("row_remap_pending")
    if state.slowdown_since is not None and now - state.slowdown_since >= slowdown_sustain_s:
        reasons.append("hw_slowdown")
    return Health(not reasons, tuple(reasons))
