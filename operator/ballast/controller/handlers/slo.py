"""WorkloadClass SLO handlers: one loop reads service levels and cost; events keep the rules.

Thin: the round's logic and which classes a pass reads are
``controller/slo_tick.py``, the Prometheus reading ``telemetry/slo_reader.py``,
the rules ``controller/slo_rules_sync.py``.

Every ``SLO_INTERVAL_SECONDS`` (after the pass before ends) one loop for the
whole operator, not a kopf timer per class (``loops.py`` says why), fetches
the classes ``slo_tick.plan`` names and, for each one ``slo_tick.wanted``
selects: reads Prometheus, writes the status patch fenced on the
``resourceVersion`` it was computed from, posts its events once written, sets
its metrics unless it is gone, and checks its PrometheusRule for drift; then
the rules ConfigMap, once. Under peering, a replica paused by a peer of higher
priority skips the pass.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from ballast.api.wellknown import GROUP, VERSION
from ballast.controller import slo_tick
from ballast.controller.events import post
from ballast.controller.handlers import loops
from ballast.controller.resync import fenced
from ballast.controller.slo_metrics import SloMetrics
from ballast.controller.slo_rules_sync import RulesSync, class_slos
from ballast.controller.slo_settings import SloSettings, interval_seconds
from ballast.kube.raw import WORKLOADCLASSES, KubeError
from ballast.logs import kv
from ballast.telemetry.prometheus import Prometheus
from ballast.telemetry.slo_queries import Signals
from ballast.telemetry.slo_reader import Breaker, Observation, read

log = logging.getLogger(__name__)

WLC = (GROUP, VERSION, "workloadclasses")
SLO_INTERVAL_SECONDS = interval_seconds()  # the pause between two passes of the loop
FIRST_DELAY_SECONDS = 1.0  # the first pass, after the loop starts (with the first class event)
READERS = 8  # classes read at once, each on a worker thread: a slow Prometheus delays a pass less


@dataclass
class SloRuntime:
    """What the SLO handlers share in one operator process."""

    settings: SloSettings
    prometheus: Prometheus | None
    rules: RulesSync
    breaker: Breaker


_lock = threading.Lock()
_metrics: SloMetrics | None = None  # one per process: its gauges live in the default registry


def _metrics_once() -> SloMetrics:
    global _metrics
    with _lock:
        if _metrics is None:
            _metrics = SloMetrics()
        return _metrics


# One runtime per operator (per API client): kopf hands each object a shallow
# copy of the memo, so an attribute set on it in a handler would be per class
# (a RulesSync, a breaker and a ConfigMap write for every one of thousands).
_runtimes: dict[int, SloRuntime] = {}


def _runtime(memo: Any) -> SloRuntime:
    with _lock:
        rt = _runtimes.get(id(memo.kube))
        if rt is None:
            settings = SloSettings.from_env()
            prom = (
                Prometheus(settings.prometheus_url, timeout_s=settings.query_timeout_s)
                if settings.prometheus_url
                else None
            )
            rt = SloRuntime(
                settings,
                prom,
                RulesSync(memo.kube, settings.rules_namespace),
                # Half an interval: the next round of every class asks again.
                Breaker(hold_s=min(SLO_INTERVAL_SECONDS / 2, 15.0)),
            )
            _runtimes[id(memo.kube)] = rt
            log.info(
                "slo reader configured",
                extra=kv(prometheus=settings.prometheus_url or "-", window=settings.window),
            )
        return rt


def _classes(index: Any, drop: str | None = None) -> dict[str, Mapping[str, Any]]:
    return {
        name: entry["spec"]
        for name, entries in index.items()
        for entry in entries
        if not entry["deleting"] and name != drop
    }


def _live(index: Any, name: str, uid: str) -> bool:
    """Whether class ``name`` (this incarnation) is still in the operator's watch."""
    return any(e["uid"] == uid and not e["deleting"] for e in index.get(name, ()))


@dataclass
class Passes:
    """What one pass of the SLO loop leaves the next (``slo_tick.plan``)."""

    first: bool = True
    read: set[str] = field(default_factory=set)


def _reader(rt: SloRuntime, memo: Any) -> slo_tick.Reader | None:
    """Prometheus through the breaker, asked once per signals: a retried round reuses it."""
    prom = rt.prometheus
    if prom is None:
        return None
    settings = rt.settings
    asked: dict[tuple[Signals, bool, bool], Observation] = {}

    def reader(signals: Signals, latency: bool, queue_wait: bool) -> Observation:
        key = (signals, latency, queue_wait)
        if key not in asked:
            asked[key] = rt.breaker.read(
                memo.clock.monotonic(),
                lambda: read(
                    prom,
                    signals,
                    window=settings.window,
                    window_s=settings.window_s,
                    at=memo.clock.now(),
                    latency=latency,
                    queue_wait=queue_wait,
                ),
                settings.window,
            )
        return asked[key]

    return reader


def read_class(
    memo: Any, rt: SloRuntime, obj: Mapping[str, Any]
) -> tuple[slo_tick.Tick, bool, Mapping[str, Any]]:
    """One class's round (blocking): read, judge, write status fenced on its resourceVersion.

    A 409 (the class changed since it was fetched) fetches it again and judges
    the same reading against the new status, once; a class gone or changed
    again waits for the next pass. Returns the round, whether its status is
    written (or needed no write), and the object it was judged from.
    """
    reader = _reader(rt, memo)
    retried = False
    while True:
        meta = obj["metadata"]
        name = str(meta["name"])
        result = slo_tick.tick(
            name,
            obj.get("spec") or {},
            obj.get("status") or {},
            meta.get("generation"),
            settings=rt.settings,
            read=reader,
            now=memo.clock.now(),
        )
        if not result.patch:
            return result, True, obj
        try:
            memo.kube.patch(WORKLOADCLASSES.path(name, sub="status"), fenced(obj, result.patch))
            return result, True, obj
        except KubeError as exc:
            if not (exc.conflict or exc.not_found):
                raise
            if exc.not_found or retried:
                return result, False, obj
        fresh = memo.kube.get(WORKLOADCLASSES.path(name))
        fresh_meta = (fresh or {}).get("metadata") or {}
        if fresh_meta.get("uid") != meta.get("uid") or fresh_meta.get("deletionTimestamp"):
            return result, False, obj
        obj, retried = fresh or obj, True


async def _read_one(
    gate: asyncio.Semaphore, memo: Any, rt: SloRuntime, index: Any, obj: Mapping[str, Any]
) -> None:
    meta = obj["metadata"]
    name, uid = str(meta["name"]), str(meta["uid"])
    try:
        async with gate:
            result, written, obj = await asyncio.to_thread(read_class, memo, rt, obj)
        if written:  # a refused write is judged again next pass, and posts then
            for type_, reason, message in result.events:
                post(obj, type_, reason, message)
        if not _live(index, name, uid):
            return  # deleted meanwhile: its DELETED event forgets its series and rules
        _metrics_once().update(name, result.slo_met, result.cost)
        # Drift of the produced rules is checked here, at the reading's pace.
        spec = obj.get("spec") or {}
        async with gate:
            await asyncio.to_thread(rt.rules.sync_prometheus_rule, name, uid, spec, True)
    except loops.ERRORS as exc:
        log.warning("slo reading failed", extra=kv(workloadclass=name, error=exc))
    except Exception:
        log.exception("slo reading failed", extra=kv(workloadclass=name))


async def _fetch(kube: Any, names: set[str] | None) -> AsyncIterator[list[dict[str, Any]]]:
    if names is None:
        async for items in loops.listed(kube, WORKLOADCLASSES):
            yield items
        return
    found = [await asyncio.to_thread(kube.get, WORKLOADCLASSES.path(n)) for n in sorted(names)]
    yield [obj for obj in found if obj is not None]


async def slo_pass(memo: Any, indexes: Mapping[str, Any], state: Passes) -> int:
    """Read every class that needs it (unless a peer pauses this replica); returns how many."""
    index = indexes["workloadclass_index"]
    names = slo_tick.plan(index, state.read, first=state.first, page=loops.PAGE)
    if names is not None and not names:
        state.first, state.read = False, set()
        return 0  # no class asks: no call at all
    if await asyncio.to_thread(loops.paused, memo):
        return 0
    rt = _runtime(memo)
    gate = asyncio.Semaphore(READERS)
    done: set[str] = set()
    async for items in _fetch(memo.kube, names):
        todo = [
            obj
            for obj in items
            if not obj["metadata"].get("deletionTimestamp")
            and slo_tick.wanted(obj.get("spec") or {}, obj.get("status") or {})
        ]
        done.update(str(obj["metadata"]["name"]) for obj in todo)
        await asyncio.gather(*(_read_one(gate, memo, rt, index, obj) for obj in todo))
    state.first, state.read = False, done
    if done:
        # The ConfigMap's drift, once a pass (RulesSync reads it at most every 15 s).
        try:
            await asyncio.to_thread(rt.rules.sync_configmap, _classes(index), True)
        except loops.ERRORS as exc:
            log.warning("slo rules check failed", extra=kv(error=exc))
    return len(done)


async def _loop(memo: Any, indexes: Mapping[str, Any]) -> None:
    state = Passes()
    delays = itertools.chain([FIRST_DELAY_SECONDS], itertools.repeat(SLO_INTERVAL_SECONDS))
    await loops.repeat("slo", delays, lambda: slo_pass(memo, indexes, state))


async def workloadclass_slo_start(memo: kopf.Memo, **kwargs: Any) -> None:
    """Start the SLO loop once, from kopf's handler context (its event poster)."""
    indexes = loops.indexes_of(kwargs)  # live mappings: the loop keeps them, not this event
    loops.start("slo", lambda: _loop(memo, indexes))


async def workloadclass_slo_rules(
    type: str | None,
    name: str,
    uid: str,
    spec: kopf.Spec,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    """Any change to a class: rewrite the rules where they changed (a cheap compare otherwise).

    Async so that kopf's class index is read here, on the event loop that
    changes it (a worker thread iterating it could meet it mid-change); the
    API writes run on a worker thread.
    """
    rt = _runtime(memo)
    deleted = type == "DELETED"
    slo = None if deleted else class_slos({name: spec}).get(name)
    if rt.rules.slo_changed(name, slo):
        classes = _classes(kwargs["workloadclass_index"], drop=name if deleted else None)
        await asyncio.to_thread(rt.rules.sync_configmap, classes)
    if deleted:
        rt.rules.forget(name)
        _metrics_once().forget(name)
        return
    await asyncio.to_thread(rt.rules.sync_prometheus_rule, name, uid, spec)
