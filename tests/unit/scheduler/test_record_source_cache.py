"""The cache inventory in GPUNodeTelemetry records: conversion, the source's choice, locality."""

from __future__ import annotations

import datetime as dt
import json
import queue
from typing import Any

import pytest
from sched_builders import RecordingActions, node, pod, run

from ballast.api import wellknown as wk
from ballast.api.v1alpha1.gpunodetelemetry import to_cache_inventory
from ballast.clock import FakeClock
from ballast.scheduler.core import Config, Scheduler
from ballast.scheduler.informer import Event
from ballast.scheduler.sources import RecordSource

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
RECORDS = "gpunodetelemetries"


def record(name: str, cache: dict[str, Any] | None) -> dict[str, Any]:
    status: dict[str, Any] = {
        "nodeName": name,
        "updateTime": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reportIntervalSeconds": 10.0,
        "gpus": [{"index": 0, "memoryTotalMiB": 81559}, {"index": 1, "memoryTotalMiB": 81559}],
    }
    if cache is not None:
        status["cache"] = cache
    return {"metadata": {"name": name}, "status": status}


def cache(*models: str, size: int = 30_000_000_000) -> dict[str, Any]:
    items = [{"kind": "model", "name": m, "bytes": size, "lastUsed": "2026-06-01T00:00:00Z"}
             for m in models]  # fmt: skip
    return {"capacityBytes": 2_000_000_000_000, "items": items, "omittedItems": 0}


def annotated(name: str, *models: str) -> dict[str, Any]:
    n = node(name, gpus=2)
    items = [{"kind": "model", "name": m, "bytes": 1} for m in models]
    n["metadata"]["annotations"] = {
        wk.ANNOTATION_CACHE: json.dumps({"capacityBytes": 10, "items": items})
    }
    return n


def test_record_cache_converts_to_the_inventory() -> None:
    inv = to_cache_inventory(record("n", cache("meta-llama/Llama-3-8B", size=123)))
    assert inv == wk.CacheInventory(
        2_000_000_000_000, (wk.CacheItem("model", "meta-llama/Llama-3-8B", 123),)
    )


@pytest.mark.parametrize(
    ("case", "obj"),
    [
        ("no status", {"metadata": {"name": "n"}}),
        ("no cache", record("n", None)),
        ("unknown kind", record("n", {"items": [{"kind": "lora", "name": "x", "bytes": 1}]})),
        ("name too long", record("n", {"items": [{"kind": "model", "name": "x" * 254}]})),
        ("negative bytes", record("n", {"items": [{"kind": "model", "name": "x", "bytes": -1}]})),
        ("bad status", {"metadata": {"name": "n"}, "status": {"gpus": "lots", "cache": cache("m")}}),
    ],
)  # fmt: skip
def test_record_without_a_valid_cache_carries_none(case: str, obj: dict[str, Any]) -> None:
    assert to_cache_inventory(obj) is None, case


def test_source_takes_the_record_cache_and_falls_back_to_the_annotation() -> None:
    src = RecordSource()
    n = annotated("n", "from-annotation")

    def names() -> list[str]:
        got = src.cache(n)
        return [i.name for i in got.value.items] if got else []

    assert names() == ["from-annotation"]
    src.on_record(False, record("n", cache("from-record")))
    assert names() == ["from-record"]
    src.on_record(False, record("n", None))  # the agent stopped scanning: the annotation again
    assert names() == ["from-annotation"]
    src.on_record(False, record("n", cache("from-record")))
    src.on_record(True, record("n", None))
    assert names() == ["from-annotation"]
    assert src.cache(node("bare")) is None


@pytest.mark.parametrize("warm", ["a", "b"])
def test_locality_follows_the_record_inventory_over_annotations(warm: str) -> None:
    cold = "b" if warm == "a" else "a"
    q: queue.Queue[Event] = queue.Queue()
    actions = RecordingActions()
    cfg = Config(pod_initial_backoff_s=0)  # woken pods tried at once (see test_pod_backoff.py)
    s = Scheduler(actions, q, FakeClock(NOW), cfg, source=RecordSource())  # type: ignore[arg-type]
    s.required.add(RECORDS)
    p = pod("p")
    p["metadata"]["annotations"] = {wk.ANNOTATION_MODELS: "llama-70b"}
    objects = [
        (RECORDS, record(warm, cache("llama-70b"))),
        (RECORDS, record(cold, cache("something-else"))),
        # The cold node's annotation claims the model: its record says otherwise and wins.
        ("nodes", annotated(cold, "llama-70b")),
        ("nodes", annotated(warm)),
        ("pods", p),
    ]
    for kind in s.required:
        q.put(Event(kind, "RELIST", {}))
    for kind, obj in objects:
        q.put(Event(kind, "SYNC", obj))
    for kind in s.required:
        q.put(Event(kind, "SYNCED", {}))
    run(s)
    assert [(b[0], b[1]) for b in actions.binds] == [("p", warm)]
    # The placement is counted as a cache hit for the pod's (default) class.
    hits = s.metrics.cache_placements.labels("", "hit")._value.get()
    misses = s.metrics.cache_placements.labels("", "miss")._value.get()
    assert (hits, misses) == (1, 0)
