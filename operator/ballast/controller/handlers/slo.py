"""WorkloadClass SLO handlers: read service levels and cost on a timer; keep the rules in line.

Thin: the round's logic is ``controller/slo_tick.py``, the Prometheus reading
``telemetry/slo_reader.py``, the rules ``controller/slo_rules_sync.py``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from ballast.api.wellknown import GROUP, VERSION
from ballast.controller import slo_tick
from ballast.controller.events import post
from ballast.controller.slo_metrics import SloMetrics
from ballast.controller.slo_rules_sync import RulesSync, class_slos
from ballast.controller.slo_settings import SloSettings, interval_seconds
from ballast.logs import kv
from ballast.telemetry.prometheus import Prometheus
from ballast.telemetry.slo_queries import Signals
from ballast.telemetry.slo_reader import Breaker, Observation, read

log = logging.getLogger(__name__)

WLC = (GROUP, VERSION, "workloadclasses")
SLO_INTERVAL_SECONDS = interval_seconds()  # kopf takes a timer's interval at registration


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


def _wanted(spec: kopf.Spec, status: kopf.Status, **_: Any) -> bool:
    return slo_tick.wanted(spec, status)


@kopf.timer(*WLC, interval=SLO_INTERVAL_SECONDS, initial_delay=1.0, when=_wanted)
def workloadclass_slo(
    body: kopf.Body,
    name: str,
    uid: str,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    patch: kopf.Patch,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    """Read the class's SLO signals and cost; write status, post flips, set the metrics."""
    rt = _runtime(memo)
    settings = rt.settings
    prom = rt.prometheus

    def reader(signals: Signals, latency: bool, queue_wait: bool) -> Observation:
        assert prom is not None
        return rt.breaker.read(
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

    result = slo_tick.tick(
        name,
        spec,
        status,
        meta.get("generation"),
        settings=settings,
        read=reader if prom is not None else None,
        now=memo.clock.now(),
    )
    for type_, reason, message in result.events:
        post(body, type_, reason, message)
    if result.patch:
        patch.status.update(result.patch)
    _metrics_once().update(name, result.slo_met, result.cost)
    # Drift of the produced rules is checked here, at the reading's pace.
    rt.rules.sync_prometheus_rule(name, uid, spec, verify=True)
    rt.rules.sync_configmap(_classes(kwargs["workloadclass_index"]), verify=True)


@kopf.on.event(*WLC)
def workloadclass_slo_rules(
    type: str | None,
    name: str,
    uid: str,
    spec: kopf.Spec,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    """Any change to a class: rewrite the rules where they changed (a cheap compare otherwise)."""
    rt = _runtime(memo)
    deleted = type == "DELETED"
    slo = None if deleted else class_slos({name: spec}).get(name)
    if rt.rules.slo_changed(name, slo):
        rt.rules.sync_configmap(
            _classes(kwargs["workloadclass_index"], drop=name if deleted else None)
        )
    if deleted:
        rt.rules.forget(name)
        _metrics_once().forget(name)
        return
    rt.rules.sync_prometheus_rule(name, uid, spec)
