"""The operator's SLO loop: which classes a pass reads, fenced writes, events, metrics."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from operator_fakes import SLO, FakeApi, NoApi, index_of, memo, record_posts, wlc
from prometheus_client import CollectorRegistry

from ballast.controller.handlers import slo
from ballast.controller.slo_metrics import SloMetrics
from ballast.controller.slo_rules_sync import RulesSync
from ballast.controller.slo_settings import SloSettings
from ballast.kube.raw import WORKLOADCLASSES, KubeError
from ballast.telemetry.slo_reader import Breaker, Observation


@pytest.fixture
def posted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    return record_posts(monkeypatch, slo)


@pytest.fixture
def metrics(monkeypatch: pytest.MonkeyPatch) -> SloMetrics:
    fresh = SloMetrics(registry=CollectorRegistry())
    monkeypatch.setattr(slo, "_metrics", fresh)
    return fresh


def slo_met(api: FakeApi, name: str) -> dict[str, Any] | None:
    obj = api.objs[WORKLOADCLASSES.path(name)]
    conditions = (obj.get("status") or {}).get("conditions") or ()
    return next((c for c in conditions if c["type"] == "SLOMet"), None)


def gauge(m: SloMetrics, name: str) -> float | None:
    for sample in m.slo_met.collect()[0].samples:
        if sample.labels.get("class") == name:
            return float(sample.value)
    return None


def rt_with(prometheus: Any, rules: Any = None) -> slo.SloRuntime:
    settings = SloSettings("http://prom:9090", window="1h", window_s=3600.0)
    return slo.SloRuntime(settings, prometheus, rules or NoApi(), Breaker(hold_s=15.0))


@pytest.fixture
def prometheus(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A Prometheus the SLO loop reads (what it answers, and how often it was asked)."""
    feed: dict[str, Any] = {"p99": 0.4, "asked": 0}

    def read(prom: Any, signals: Any, **_: Any) -> Observation:
        feed["asked"] += 1
        return Observation("1h", latency_p95_s=0.2, latency_p99_s=feed["p99"])

    runtimes: dict[int, slo.SloRuntime] = {}

    def runtime(memo: Any) -> slo.SloRuntime:
        return runtimes.setdefault(id(memo.kube), rt_with(object(), RulesSync(memo.kube, "ns")))

    monkeypatch.setattr(slo, "read", read)
    monkeypatch.setattr(slo, "_runtime", runtime)
    return feed


def test_slo_pass_reads_wanted_classes_writes_fenced_and_sets_metrics(
    posted: list[tuple[str, str, str]], metrics: SloMetrics, prometheus: dict[str, Any]
) -> None:
    classes = [
        wlc("chat", slo=SLO),
        wlc("batch", tier="Offline"),
        wlc("fresh", status={}, slo=SLO),  # not reconciled yet: nothing written
    ]
    api = FakeApi(*copy.deepcopy(classes))
    state = slo.Passes()
    # A big cluster: 1,200 more classes in the watch (three LIST pages).
    others = index_of(*(wlc(f"other-{i}", tier="Offline") for i in range(1200)))
    indexes = {"workloadclass_index": {**others, **index_of(*classes)}}
    assert asyncio.run(slo.slo_pass(memo(api), indexes, state)) == 2
    assert slo_met(api, "chat")["status"] == "True"  # type: ignore[index]
    assert slo_met(api, "batch") is None and slo_met(api, "fresh") is None
    assert gauge(metrics, "chat") == 1.0
    patched = [p for verb, p in api.calls if verb == "patch"]
    assert patched == [WORKLOADCLASSES.path("chat", sub="status")]
    assert ("apply", "/api/v1/namespaces/ns/configmaps/ballast-slo-rules") in api.calls
    assert posted == []  # a first SLOMet=True is no news
    assert state.read == {"chat", "fresh"} and not state.first
    # Latency up: the next pass, fetching only what may want reading (a GET
    # each, no LIST), flips it with its event and metric.
    prometheus["p99"] = 2.0
    api.calls.clear()
    now = [api.objs[WORKLOADCLASSES.path(n)] for n in ("chat", "batch", "fresh")]
    indexes["workloadclass_index"] = {**others, **index_of(*now)}
    asyncio.run(slo.slo_pass(memo(api), indexes, state))
    assert ("list", WORKLOADCLASSES.path()) not in api.calls
    fetched = {p for verb, p in api.calls if verb == "get" and "workloadclasses" in p}
    assert fetched == {WORKLOADCLASSES.path("chat"), WORKLOADCLASSES.path("fresh")}
    assert slo_met(api, "chat")["reason"] == "LatencyP99Exceeded"  # type: ignore[index]
    assert posted == [("chat", "Warning", "SLOViolated")]
    assert gauge(metrics, "chat") == 0.0
    # Unchanged: nothing written again.
    api.calls.clear()
    asyncio.run(slo.slo_pass(memo(api), indexes, state))
    assert not [p for verb, p in api.calls if verb == "patch"]


def test_slo_removed_is_cleared_then_no_longer_read(
    metrics: SloMetrics, prometheus: dict[str, Any]
) -> None:
    chat = wlc("chat", slo=SLO)
    api = FakeApi(copy.deepcopy(chat))
    state = slo.Passes()
    indexes: dict[str, Any] = {"workloadclass_index": index_of(chat)}
    asyncio.run(slo.slo_pass(memo(api), indexes, state))
    obj = api.objs[WORKLOADCLASSES.path("chat")]
    assert slo_met(api, "chat") is not None and obj["status"]["slo"]
    assert gauge(metrics, "chat") == 1.0
    # The slo goes: the next pass removes SLOMet, status.slo and the series ...
    obj["spec"].pop("slo")
    api.put(obj)
    indexes["workloadclass_index"] = index_of(obj)
    asyncio.run(slo.slo_pass(memo(api), indexes, state))
    assert slo_met(api, "chat") is None and "slo" not in obj["status"]
    assert gauge(metrics, "chat") is None
    assert state.read == {"chat"}
    # ... the next one looks at it once more (a GET) and finds nothing to read,
    # and from then on no pass makes a call.
    indexes["workloadclass_index"] = index_of(api.objs[WORKLOADCLASSES.path("chat")])
    api.calls.clear()
    assert asyncio.run(slo.slo_pass(memo(api), indexes, state)) == 0
    assert api.calls == [("get", WORKLOADCLASSES.path("chat"))] and state.read == set()
    assert asyncio.run(slo.slo_pass(memo(NoApi()), indexes, state)) == 0


def test_no_class_with_an_slo_costs_no_call() -> None:
    state = slo.Passes(first=False)
    indexes = {"workloadclass_index": index_of(wlc("batch", tier="Offline"))}
    assert asyncio.run(slo.slo_pass(memo(NoApi()), indexes, state)) == 0


def test_a_class_deleted_during_the_pass_keeps_no_series(
    metrics: SloMetrics, prometheus: dict[str, Any]
) -> None:
    chat = wlc("chat", slo=SLO)
    api = FakeApi(copy.deepcopy(chat))
    # Listed, but gone from the watch (its DELETED event forgot its series)
    # by the time its reading ends: no series comes back, no rule is checked.
    asyncio.run(slo.slo_pass(memo(api), {"workloadclass_index": {}}, slo.Passes()))
    assert gauge(metrics, "chat") is None
    assert ("get", "/apis/monitoring.coreos.com/v1") not in api.calls
    # Still there: the series is set.
    asyncio.run(slo.slo_pass(memo(api), {"workloadclass_index": index_of(chat)}, slo.Passes()))
    assert gauge(metrics, "chat") == 1.0


def test_a_conflict_is_judged_again_on_the_fresh_object_with_the_same_reading(
    prometheus: dict[str, Any],
) -> None:
    api = FakeApi(wlc("chat", slo=SLO))
    listed = copy.deepcopy(api.objs[WORKLOADCLASSES.path("chat")])
    api.refuse = [409]  # someone writes the class between our LIST and our PATCH
    _, written, judged = slo.read_class(memo(api), rt_with(object()), listed)
    assert written and prometheus["asked"] == 1  # asked once for both rounds
    assert judged["metadata"]["resourceVersion"] != listed["metadata"]["resourceVersion"]
    assert slo_met(api, "chat")["status"] == "True"  # type: ignore[index]
    # Twice refused: left for the next pass, and no event is posted for it.
    api2 = FakeApi(wlc("chat", slo=SLO))
    api2.refuse = [409, 409]
    listed = copy.deepcopy(api2.objs[WORKLOADCLASSES.path("chat")])
    _, written, _ = slo.read_class(memo(api2), rt_with(object()), listed)
    assert not written and slo_met(api2, "chat") is None
    # Gone: not written, not retried.
    api3 = FakeApi(wlc("chat", slo=SLO))
    api3.refuse = [404]
    _, written, _ = slo.read_class(memo(api3), rt_with(object()), listed)
    assert not written and [v for v, _ in api3.calls] == ["patch"]


class MissingNamespace:
    """A Kube whose ConfigMap writes are refused: the rules namespace does not exist."""

    def __init__(self) -> None:
        self.applies = 0

    def get(self, path: str) -> None:
        return None

    def apply(self, path: str, body: Any, field_manager: str) -> None:
        self.applies += 1
        raise KubeError(404, 'namespaces "ns" not found', {})


def test_a_missing_rules_namespace_is_warned_about_once_not_every_pass(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import ballast.controller.slo_rules_sync as sync

    clock = [1000.0]
    monkeypatch.setattr(sync.time, "monotonic", lambda: clock[0])
    kube = MissingNamespace()
    rules = RulesSync(kube, "ns")  # type: ignore[arg-type]
    specs = {"chat": {"tier": "Interactive", "slo": SLO}}
    with caplog.at_level("DEBUG", logger=sync.__name__):
        for _ in range(4):  # four passes, each past the retry pause
            rules.sync_configmap(specs, verify=True)
            clock[0] += 60.0
    assert kube.applies == 4  # still tried every pass: the namespace may appear
    warned = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and "not written" in warned[0].getMessage()
