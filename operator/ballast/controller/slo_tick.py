"""One round of a class's SLO and cost reading: the status patch and events. Pure.

The Prometheus reading is injected (``read``), so this is tested without a
server; the operator's SLO loop in ``handlers/slo.py`` passes the real reader.
Which classes a pass reads, and how it fetches them, is decided here too.
Invalid specs are left to the main reconciliation, which reports them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ballast.api.v1alpha1.slostatus import CostStatus, SloStatus
from ballast.api.v1alpha1.workloadclass import WorkloadClassSpec
from ballast.controller.conditions import merge_conditions, rfc3339
from ballast.controller.cost import cost_status
from ballast.controller.slo import CONDITION, flip_event, judge, previous
from ballast.controller.slo_settings import SloSettings
from ballast.telemetry.slo_queries import DEFAULT_SUCCESS_COUNTER, Signals
from ballast.telemetry.slo_reader import Observation

# (signals, read latency quantiles, read queue wait) -> observation
Reader = Callable[[Signals, bool, bool], Observation]


@dataclass
class Tick:
    """What one round found: a merge patch for ``status``, events, and the metric values."""

    patch: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    slo_met: bool | None = None
    cost: Mapping[str, Any] | None = None


def merge_patch(old: Any, new: Any) -> Any:
    """The JSON merge patch (RFC 7386) that turns ``old`` into ``new``.

    Keys of ``old`` missing from ``new`` become None, so a value that can no
    longer be read disappears instead of lingering from an earlier round.
    """
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return new
    out: dict[str, Any] = {k: None for k in old if k not in new}
    for k, v in new.items():
        out[k] = merge_patch(old.get(k), v) if isinstance(v, Mapping) else v
    return out


def _wire_keys(model: Any) -> tuple[str, ...]:
    return tuple(f.alias or n for n, f in model.model_fields.items())


SLO_KEYS = _wire_keys(SloStatus)
COST_KEYS = _wire_keys(CostStatus)


def full_patch(old: Any, new: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """:func:`merge_patch`, and every known key absent from ``new`` set to None.

    The status copy a round reads can lag the operator's own last write;
    nulling every field ``new`` lacks removes a value that copy did not show yet
    (a ``reason`` from the round before), so status never says more than is true.
    """
    out = dict(merge_patch(old, new))  # a copy: merge_patch may return ``new`` itself
    for k in keys:
        if k not in new:
            out[k] = None
    return out


def _news(old: Any, new: Mapping[str, Any]) -> bool:
    """Whether ``new`` says anything ``old`` does not, the reading time aside.

    A reading that finds the same values is not written again: an idle class
    costs no status write (no watch event for every watcher of classes), and
    ``observedAt`` stays the time of the reading the values come from.
    """
    if not isinstance(old, Mapping):
        return True
    return {k: v for k, v in old.items() if k != "observedAt"} != {
        k: v for k, v in new.items() if k != "observedAt"
    }


def wanted(spec: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Whether a class needs reading: it asks for SLOs or cost, or has some to remove."""
    return bool(
        spec.get("slo")
        or spec.get("pricePerGPUHour")
        or status.get("slo")
        or status.get("cost")
        or previous(status.get("conditions"))
    )


def may_want(spec: Mapping[str, Any], condition_types: Iterable[str]) -> bool:
    """:func:`wanted` as far as a class's index entry tells (its spec, its condition types).

    The entry does not hold ``status.slo`` or ``status.cost``: a class left
    with one of them after its ``slo`` or price went is found by :func:`plan`.
    """
    return bool(spec.get("slo") or spec.get("pricePerGPUHour") or CONDITION in condition_types)


def plan(
    entries: Mapping[str, Iterable[Mapping[str, Any]]],
    read_last: Collection[str],
    *,
    first: bool,
    page: int,
) -> set[str] | None:
    """What one pass fetches: None to LIST every class, else the names to GET (maybe none).

    ``entries`` is the operator's class index (name -> entries with ``spec``,
    ``conditions`` (types) and ``deleting``); ``read_last`` the classes the
    previous pass read. The first pass after a start lists every class (only
    the objects show a leftover ``status.slo`` or ``status.cost``); later
    passes fetch the classes the index says :func:`may_want` reading, and those
    read last time (one whose ``slo`` or price just went has status to clear):
    a GET each when that is no more calls than a LIST in pages of ``page``,
    else a LIST. A cluster without SLOs or prices costs no call.
    """
    if first:
        return None
    names = {
        name
        for name, found in entries.items()
        for entry in found
        if not entry.get("deleting") and may_want(entry["spec"], entry.get("conditions") or ())
    }
    names.update(read_last)
    pages = max(1, -(-len(entries) // page))
    return names if len(names) <= pages else None


def tick(
    name: str,
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    generation: int | None,
    *,
    settings: SloSettings,
    read: Reader | None,
    now: dt.datetime,
) -> Tick:
    """Read, judge and price class ``name``; ``read`` None: no Prometheus configured.

    Nothing is written until the class's own reconcile has written ``Ready`` for
    its generation: a status patch replaces the whole conditions list, and one
    computed before that write would drop it.
    """
    if status.get("observedGeneration") != generation or not any(
        c.get("type") == "Ready" for c in status.get("conditions") or ()
    ):
        return Tick()
    try:
        parsed = WorkloadClassSpec.model_validate(dict(spec))
    except ValidationError:
        return Tick()
    slo, prices = parsed.slo, parsed.price_per_gpu_hour
    out = Tick()
    old_conditions = list(status.get("conditions") or [])
    conditions = old_conditions
    signals = Signals.of(
        name,
        latency_histogram=slo.latency_histogram if slo else None,
        success_counter=slo.success_counter if slo else None,
        match_labels=slo.match_labels if slo else None,
    )
    obs: Observation | None = None
    if read is not None and (slo is not None or prices is not None):
        obs = read(signals, slo is not None, slo is not None)
    observed_at = rfc3339(now)

    if slo is not None:
        judged = judge(slo, obs, observed_at=observed_at, configured=read is not None)
        if judged.status is not None and _news(status.get("slo"), judged.status):
            out.patch["slo"] = full_patch(status.get("slo"), judged.status, SLO_KEYS)
        conditions = merge_conditions(
            old_conditions, [judged.condition], generation=generation, now=now
        )
        event = flip_event(previous(old_conditions), judged.condition)
        if event is not None:
            out.events.append(event)
        out.slo_met = judged.condition.status
    else:
        if status.get("slo") is not None:
            out.patch["slo"] = None
        conditions = [c for c in old_conditions if c.get("type") != CONDITION]
    if conditions != old_conditions:
        out.patch["conditions"] = conditions

    if prices is not None:
        out.cost = status.get("cost")
        if obs is not None and not obs.unreachable:
            cost = cost_status(
                prices,
                obs,
                window_s=settings.window_s,
                observed_at=observed_at,
                success_counter=(slo.success_counter if slo else None) or DEFAULT_SUCCESS_COUNTER,
            )
            if _news(status.get("cost"), cost):
                out.patch["cost"] = full_patch(status.get("cost"), cost, COST_KEYS)
                out.cost = cost
    elif status.get("cost") is not None:
        out.patch["cost"] = None
    return out
