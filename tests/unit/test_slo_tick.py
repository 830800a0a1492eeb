"""One SLO round of a class (controller/slo_tick.py), its metrics, flags and produced rules."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from ballast.clock import FakeClock
from ballast.controller import slo_options
from ballast.controller.slo_metrics import SloMetrics
from ballast.controller.slo_rules_sync import build_configmap, build_prometheus_rule
from ballast.controller.slo_settings import RULES_KEY, SloSettings
from ballast.controller.slo_tick import Tick, merge_patch, tick, wanted
from ballast.telemetry.slo_queries import Signals
from ballast.telemetry.slo_reader import Observation

SETTINGS = SloSettings("http://prom:9090", window="1h", window_s=3600.0)
SPEC: dict[str, Any] = {
    "tier": "Interactive",
    "slo": {"latencyP95Ms": 500, "latencyP99Ms": 1000},
    "pricePerGPUHour": {"NVIDIA-L4": 0.8},
}


class Feed:
    """A reader whose next observation the test sets; records what it was asked."""

    def __init__(self, **values: Any) -> None:
        self.values = values
        self.asked: list[tuple[Signals, bool, bool]] = []

    def __call__(self, signals: Signals, latency: bool, queue_wait: bool) -> Observation:
        self.asked.append((signals, latency, queue_wait))
        return Observation("1h", **self.values)


READY = {"type": "Ready", "status": "True", "reason": "Reconciled", "observedGeneration": 3}


def reconciled(status: dict[str, Any]) -> dict[str, Any]:
    """``status`` as the class's own reconcile leaves it: Ready for generation 3."""
    others = [c for c in status.get("conditions") or [] if c["type"] != "Ready"]
    return {**status, "observedGeneration": 3, "conditions": [READY, *others]}


def run(spec: dict[str, Any], status: dict[str, Any], feed: Feed | None, clock: FakeClock) -> Tick:
    return tick("chat", spec, reconciled(status), 3, settings=SETTINGS, read=feed,
                now=clock.now())  # fmt: skip


def test_nothing_is_written_before_the_class_is_reconciled_for_its_generation() -> None:
    clock = FakeClock(dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC))
    feed = Feed(latency_p95_s=0.2, latency_p99_s=0.6)
    for status in ({}, {"observedGeneration": 2, "conditions": [READY]},
                   {"observedGeneration": 3, "conditions": []}):  # fmt: skip
        got = tick("chat", SPEC, status, 3, settings=SETTINGS, read=feed, now=clock.now())
        assert got.patch == {} and not got.events
    assert feed.asked == []  # not even read


def apply(status: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """What the API server does with a merge patch."""
    out = dict(status)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict):  # a null inside a merge patch is never stored
            out[k] = apply(out[k] if isinstance(out.get(k), dict) else {}, v)
        else:
            out[k] = v
    return out


def slo_met(status: dict[str, Any]) -> tuple[str, str] | None:
    for c in status.get("conditions") or []:
        if c["type"] == "SLOMet":
            return c["status"], c["reason"]
    return None


def test_rounds_met_violated_unreachable_and_back() -> None:
    clock = FakeClock(dt.datetime(2026, 12, 1, 6, tzinfo=dt.UTC))
    good = Feed(latency_p95_s=0.2, latency_p99_s=0.6, requests=100.0, successes=100.0,
                gpu_hours_by_model={"NVIDIA-L4": 1.0})  # fmt: skip
    first = run(SPEC, {}, good, clock)
    status = apply({}, first.patch)
    assert slo_met(status) == ("True", "Met") and first.events == []
    assert status["slo"]["latencyP99Ms"] == {"observed": 600.0, "objective": 1000.0}
    assert status["slo"]["observedAt"] == "2026-12-01T06:00:00Z"
    assert status["cost"]["costPerSuccessfulResponse"] == pytest.approx(0.8 / 100)
    assert first.slo_met is True and first.cost == status["cost"]
    assert good.asked[0][0].class_name == "chat"

    clock.advance(30)
    slow = Feed(latency_p95_s=0.4, latency_p99_s=1.5, requests=100.0, successes=100.0,
                gpu_hours_by_model={"NVIDIA-L4": 1.0})  # fmt: skip
    second = run(SPEC, status, slow, clock)
    status = apply(status, second.patch)
    assert slo_met(status) == ("False", "LatencyP99Exceeded")
    assert [e[:2] for e in second.events] == [("Warning", "SLOViolated")]

    clock.advance(30)
    down = run(SPEC, status, Feed(unreachable="query: cannot reach http://prom:9090"), clock)
    assert "slo" not in down.patch and "cost" not in down.patch  # last values stay
    status = apply(status, down.patch)
    assert slo_met(status) == ("Unknown", "PrometheusUnreachable")
    assert status["slo"]["observedAt"] == "2026-12-01T06:00:30Z"
    assert status["slo"]["latencyP99Ms"]["observed"] == 1500.0
    assert [e[1] for e in down.events] == ["SLOUnknown"]

    clock.advance(30)
    back = run(SPEC, status, good, clock)
    status = apply(status, back.patch)
    assert slo_met(status) == ("True", "Met") and [e[1] for e in back.events] == ["SLOMet"]


def test_a_value_that_vanishes_is_removed_not_kept() -> None:
    clock = FakeClock(dt.datetime(2026, 12, 1, 6, tzinfo=dt.UTC))
    full = run(SPEC, {}, Feed(latency_p95_s=0.2, latency_p99_s=0.6), clock)
    status = apply({}, full.patch)
    empty = run(SPEC, status, Feed(latency_p95_s=0.2), clock)
    status = apply(status, empty.patch)
    assert status["slo"]["latencyP99Ms"] == {"objective": 1000.0}


def test_removing_slo_and_price_clears_status_and_condition() -> None:
    clock = FakeClock(dt.datetime(2026, 12, 1, 6, tzinfo=dt.UTC))
    feed = Feed(latency_p95_s=0.2, latency_p99_s=0.6, gpu_hours_by_model={})
    base = {"conditions": [{"type": "Ready", "status": "True"}]}
    status = apply(base, run(SPEC, base, feed, clock).patch)
    assert [c["type"] for c in status["conditions"]] == ["Ready", "SLOMet"]
    assert wanted({"tier": "Interactive"}, status)
    cleared = run({"tier": "Interactive"}, status, feed, clock)
    status = apply(status, cleared.patch)
    assert "slo" not in status and "cost" not in status
    assert [c["type"] for c in status["conditions"]] == ["Ready"]
    assert not wanted({"tier": "Interactive"}, status)


def test_price_only_class_reads_no_quantiles_and_has_no_slo_condition() -> None:
    clock = FakeClock(dt.datetime(2026, 12, 1, 6, tzinfo=dt.UTC))
    feed = Feed(gpu_hours_by_model={"NVIDIA-L4": 2.0})
    got = run({"tier": "Offline", "pricePerGPUHour": {"NVIDIA-L4": 1.0}}, {}, feed, clock)
    assert feed.asked[0][1:] == (False, False)
    assert "conditions" not in got.patch and "slo" not in got.patch
    assert got.patch["cost"]["costPerHour"] == 2.0
    assert got.patch["cost"]["reason"].startswith("NoRequestCounter")


def test_without_prometheus_the_condition_says_so() -> None:
    clock = FakeClock(dt.datetime(2026, 12, 1, 6, tzinfo=dt.UTC))
    got = run(SPEC, {}, None, clock)
    assert slo_met(apply({}, got.patch)) == ("Unknown", "PrometheusNotConfigured")
    assert "slo" not in got.patch and "cost" not in got.patch and got.events == []


def test_an_invalid_spec_is_left_to_the_reconciler() -> None:
    clock = FakeClock(dt.datetime(2026, 12, 1, 6, tzinfo=dt.UTC))
    bad = {"tier": "Urgent", "slo": {"latencyP99Ms": 100}}
    assert run(bad, {}, Feed(), clock).patch == {}


def test_merge_patch_nulls_what_is_gone() -> None:
    assert merge_patch({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": 4}}) == {
        "a": None,
        "b": {"c": 4, "d": None},
    }


def test_metrics_follow_the_status_and_forget_deleted_classes() -> None:
    registry = CollectorRegistry()
    m = SloMetrics(registry)
    m.update("chat", True, {"window": "1h", "gpuHours": 2.0, "costPerHour": 1.6,
                            "costPerSuccessfulResponse": 0.002})  # fmt: skip
    text = generate_latest(registry).decode()
    assert 'ballast_workloadclass_slo_met{class="chat"} 1.0' in text
    assert (
        'ballast_workloadclass_cost_per_successful_response{class="chat",window="1h"} 0.002' in text
    )
    m.update("chat", None, {"window": "1h", "gpuHours": 2.0, "costPerHour": 1.6})
    text = generate_latest(registry).decode()
    assert "ballast_workloadclass_slo_met{" not in text
    assert "ballast_workloadclass_cost_per_successful_response{" not in text
    assert 'ballast_workloadclass_gpu_cost_per_hour{class="chat",window="1h"} 1.6' in text
    m.forget("chat")
    assert 'class="chat"' not in generate_latest(registry).decode()


def test_flags_become_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("BALLAST_PROMETHEUS_URL", "BALLAST_SLO_WINDOW", "BALLAST_SLO_RULES_NAMESPACE"):
        monkeypatch.delenv(var, raising=False)
    parser = argparse.ArgumentParser()
    slo_options.configure(parser)
    parser.add_argument("--webhook-namespace", default="ballast-system")
    args = parser.parse_args(["--prometheus-url", "http://p:9090", "--slo-window", "120s"])
    slo_options.export(args)
    got = SloSettings.from_env()
    assert (got.prometheus_url, got.window, got.window_s) == ("http://p:9090", "2m", 120.0)
    assert got.rules_namespace == "ballast-system"
    with pytest.raises(SystemExit):
        parser.parse_args(["--slo-window", "1h30m"])


def test_rules_objects() -> None:
    cm = build_configmap("ops", {"chat": SPEC, "plain": {"tier": "Offline"}})
    assert cm["metadata"]["namespace"] == "ops"
    assert "name: ballast-slo-chat" in cm["data"][RULES_KEY]
    assert "ballast-slo-plain" not in cm["data"][RULES_KEY]
    rule = build_prometheus_rule("ops", "chat", "uid-1", SPEC)
    assert rule is not None
    assert rule["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert rule["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "ballast"
    assert rule["spec"]["groups"][0]["name"] == "ballast-slo-chat"
    assert build_prometheus_rule("ops", "plain", "uid-2", {"tier": "Offline"}) is None


def test_the_same_values_again_are_not_rewritten() -> None:
    clock = FakeClock(dt.datetime(2026, 12, 1, 6, tzinfo=dt.UTC))
    feed = Feed(latency_p95_s=0.2, latency_p99_s=0.6, gpu_hours_by_model={"NVIDIA-L4": 1.0})
    status = apply({}, run(SPEC, {}, feed, clock).patch)
    clock.advance(30)
    assert run(SPEC, status, feed, clock).patch == {}
    feed.values["latency_p99_s"] = 0.7
    changed = run(SPEC, status, feed, clock).patch
    assert changed["slo"]["latencyP99Ms"]["observed"] == 700.0
    assert changed["slo"]["observedAt"] == "2026-12-01T06:00:30Z"
