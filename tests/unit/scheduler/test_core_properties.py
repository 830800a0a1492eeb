"""Stateful property test: any sequence of hostile objects leaves the scheduler sound.

Random add/update/delete of nodes, pods (arbitrary labels, annotations,
quantities, pre-bound or not), classes, quotas, windows, namespaces and PDBs,
plus bind and eviction results and the passing of time, are fed to the real
scheduler core with the real engine. After every step:

- nothing raised, and nothing reached the catch-all (validation handled it);
- no GPU or GPU share is over-committed, and the snapshot's per-GPU free
  amounts equal capacity minus what the placed pods hold;
- every pod of ours is bound once or waiting, and a parked pod has a reason.

``make test`` runs a bounded number of examples; for a longer run:
``BALLAST_PROPERTY_EXAMPLES=2000 .venv/bin/python -m pytest tests/unit/scheduler/test_core_properties.py``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from sched_builders import RecordingActions, make

from ballast.api import wellknown as wk
from ballast.scheduler.actions import RESULT
from ballast.scheduler.core import Scheduler
from ballast.scheduler.informer import Event

EXAMPLES = int(os.environ.get("BALLAST_PROPERTY_EXAMPLES", "40"))

NODES = [f"n{i}" for i in range(4)]
PODS = [f"p{i}" for i in range(12)]
CLASSES = ["chat", "batch", "bulk"]
NAMESPACES = ["a", "b", "c"]

junk = st.one_of(
    st.text(max_size=6),
    st.integers(-5, 5).map(str),
    st.sampled_from(["999", "-1", "0,0", "1,2,3", "1e999", "nan", "", " ", "0", "1"]),
)
any_value: st.SearchStrategy[Any] = st.one_of(
    junk, st.integers(-3, 3), st.none(), st.lists(st.integers(0, 2), max_size=2)
)


def gpu_quantity() -> st.SearchStrategy[Any]:
    return st.one_of(st.integers(0, 3).map(str), junk, st.integers(-2, 9))


@st.composite
def node_obj(draw: st.DrawFn, name: str) -> dict[str, Any]:
    labels = draw(st.dictionaries(st.sampled_from([wk.LABEL_GPU_PRODUCT, wk.LABEL_GPU_MEMORY_MIB, "zone"]),
                                  st.one_of(junk, st.just("H100")), max_size=3))  # fmt: skip
    alloc = {
        "cpu": draw(st.sampled_from(["64", "1e999", "x", "-4", "0"])),
        "memory": draw(st.sampled_from(["512Gi", "nan", "1Ti", "-1"])),
        wk.GPU_RESOURCE: draw(
            st.one_of(st.integers(0, 4).map(str), st.sampled_from(["100000", "-3", "x"]))
        ),
    }
    annotations = {}
    if draw(st.booleans()):
        annotations[wk.ANNOTATION_TELEMETRY] = draw(
            st.sampled_from(["{", "[]", '{"gpus": 5}', "null"])
        )
    return {
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": draw(
            st.sampled_from(
                [
                    {},
                    {"unschedulable": True},
                    {"taints": "nope"},
                    {"taints": [{"key": "k", "effect": "NoSchedule"}]},
                ]
            )
        ),
        "status": {
            "allocatable": alloc,
            "conditions": [{"type": "Ready", "status": draw(st.sampled_from(["True", "False"]))}],
        },
    }


@st.composite
def pod_obj(draw: st.DrawFn, name: str, node: str | None) -> dict[str, Any]:
    labels: dict[str, Any] = {}
    if draw(st.booleans()):
        labels[wk.LABEL_CLASS] = draw(st.one_of(st.sampled_from(CLASSES), junk))
    annotations: dict[str, Any] = {}
    if draw(st.booleans()):
        annotations[wk.ANNOTATION_GPU_MILLI] = draw(
            st.one_of(st.sampled_from(["300", "500", "1000"]), junk)
        )
    if draw(st.booleans()):
        annotations["ballast.dev/gpu-ids"] = draw(junk)
    limits = {
        wk.GPU_RESOURCE: draw(gpu_quantity()),
        "cpu": draw(st.sampled_from(["1", "x", "1e999"])),
    }
    spec: dict[str, Any] = {
        "schedulerName": draw(st.sampled_from(["ballast", "ballast", "default-scheduler"])),
        "containers": [{"name": "c", "resources": {"limits": limits}}],
        "priority": draw(any_value),
        "tolerations": draw(st.sampled_from([[], [{"operator": "Exists"}], "x", [None]])),
    }
    if node is not None:
        spec["nodeName"] = node
    return {
        "metadata": {
            "name": name,
            "namespace": draw(st.sampled_from(NAMESPACES)),
            "uid": f"uid-{name}",
            "labels": labels,
            "annotations": annotations,
            "creationTimestamp": draw(st.sampled_from(["2026-01-01T00:00:00Z", "garbage", ""])),
        },
        "spec": spec,
        "status": {"phase": draw(st.sampled_from(["Pending", "Running", "Running", "Succeeded"]))},
    }


@st.composite
def class_obj(draw: st.DrawFn, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "tier": draw(st.sampled_from(["Interactive", "Nearline", "Offline", "Bogus"])),
        "priority": draw(st.one_of(st.integers(0, 100), junk)),
        "preemption": draw(
            st.sampled_from(
                [
                    {},
                    {"policy": "LowerTier", "gracePeriodSeconds": 0},
                    {"policy": "LowerPriority"},
                    {"policy": "Never", "preemptible": False},
                    {"gracePeriodSeconds": "x"},
                ]
            )
        ),
    }
    if draw(st.booleans()):
        spec["window"] = draw(st.sampled_from(["w0", "w1", "missing"]))
    if draw(st.booleans()):
        spec["namespaceSelector"] = draw(st.sampled_from([
            {"matchLabels": {"team": "x"}},
            {"matchExpressions": [{"key": "team", "operator": "In"}]},
            {"matchExpressions": [{"key": "team", "operator": "Exists"}]},
            "garbage",
        ]))  # fmt: skip
    if draw(st.booleans()):
        spec["nodePool"] = draw(
            st.sampled_from([{"name": "p", "gpuProducts": ["H100"]}, {"minGPUMemoryMiB": "x"}])
        )
    return {"metadata": {"name": name}, "spec": spec}


class SchedulerMachine(RuleBasedStateMachine):
    """Drives one scheduler core through random cluster histories."""

    s: Scheduler
    actions: RecordingActions

    @initialize()
    def start(self) -> None:
        self.s, self.actions, self.q = make()
        self.s.step(0)
        self.seen_binds = 0

    def _put(self, kind: str, type_: str, obj: dict[str, Any]) -> None:
        self.q.put(Event(kind, type_, obj))

    @rule(name=st.sampled_from(NODES), data=st.data())
    def upsert_node(self, name: str, data: st.DataObject) -> None:
        self._put("nodes", "MODIFIED", data.draw(node_obj(name)))

    @rule(name=st.sampled_from(NODES))
    def delete_node(self, name: str) -> None:
        self._put("nodes", "DELETED", {"metadata": {"name": name}})

    @rule(
        name=st.sampled_from(PODS),
        node=st.one_of(st.none(), st.sampled_from(NODES)),
        data=st.data(),
    )
    def upsert_pod(self, name: str, node: str | None, data: st.DataObject) -> None:
        self._put("pods", "MODIFIED", data.draw(pod_obj(name, node)))

    @rule(name=st.sampled_from(PODS))
    def delete_pod(self, name: str) -> None:
        self._put(
            "pods", "DELETED", {"metadata": {"name": name, "namespace": "a", "uid": f"uid-{name}"}}
        )

    @rule(name=st.sampled_from(CLASSES), data=st.data())
    def upsert_class(self, name: str, data: st.DataObject) -> None:
        self._put("workloadclasses", "MODIFIED", data.draw(class_obj(name)))

    @rule(name=st.sampled_from(CLASSES))
    def delete_class(self, name: str) -> None:
        self._put("workloadclasses", "DELETED", {"metadata": {"name": name}})

    @rule(name=st.sampled_from(["q0", "q1"]), gpus=st.one_of(st.integers(0, 4), junk),
          nss=st.lists(st.sampled_from(NAMESPACES), max_size=2), cohort=st.sampled_from(["", "co"]))  # fmt: skip
    def upsert_quota(self, name: str, gpus: Any, nss: list[str], cohort: str) -> None:
        spec = {"gpus": gpus, "namespaces": nss, "tierLimits": {"Offline": 1}}
        if cohort:
            spec["cohort"] = cohort
        self._put(
            "gpuquotas",
            "MODIFIED",
            {
                "metadata": {
                    "name": name,
                    "creationTimestamp": f"2026-01-0{int(name[1]) + 1}T00:00:00Z",
                },
                "spec": spec,
            },
        )

    @rule(name=st.sampled_from(["w0", "w1"]), schedule=st.sampled_from(["0 0 30 2 *", "* * * * *", "0 1 * * *", "61 * * * *", "x"]),
          duration=st.sampled_from(["1h", "30m", "garbage", "0s"]))  # fmt: skip
    def upsert_window(self, name: str, schedule: str, duration: str) -> None:
        spec = {"schedule": schedule, "duration": duration, "timeZone": "Europe/Berlin"}
        self._put("batchwindows", "MODIFIED", {"metadata": {"name": name}, "spec": spec})

    @rule(ns=st.sampled_from(NAMESPACES), team=st.sampled_from(["x", "y"]))
    def label_namespace(self, ns: str, team: str) -> None:
        self._put("namespaces", "MODIFIED", {"metadata": {"name": ns, "labels": {"team": team}}})

    @rule(sel=st.sampled_from([{"matchLabels": {"app": "x"}}, {"matchExpressions": [{"key": "a", "operator": "Bad"}]}, None]),
          allowed=st.one_of(st.integers(0, 2), st.just("x")))  # fmt: skip
    def upsert_pdb(self, sel: Any, allowed: Any) -> None:
        self._put("poddisruptionbudgets", "MODIFIED",
                  {"metadata": {"namespace": "a", "name": "pdb"}, "spec": {"selector": sel},
                   "status": {"disruptionsAllowed": allowed}})  # fmt: skip

    @rule(ok=st.booleans(), status=st.sampled_from([0, 404, 409, 422, 500]))
    def answer_bind(self, ok: bool, status: int) -> None:
        if self.seen_binds >= len(self.actions.binds):
            return
        name, node, annotations = self.actions.binds[self.seen_binds]
        self.seen_binds += 1
        uid = f"uid-{name}"
        rec = self.s.pods.get(uid)
        if rec is None:
            return
        self._put(
            RESULT, "bind", {"uid": uid, "ok": ok, "status": status, "node": node, "error": "x"}
        )
        if ok:
            obj = {**rec.obj, "spec": {**rec.obj["spec"], "nodeName": node},
                   "metadata": {**rec.obj["metadata"], "annotations": {**rec.obj["metadata"]["annotations"], **annotations}}}  # fmt: skip
            self._put("pods", "MODIFIED", obj)

    @rule(ok=st.booleans(), victim=st.sampled_from(PODS), preemptor=st.sampled_from(PODS))
    def answer_eviction(self, ok: bool, victim: str, preemptor: str) -> None:
        self._put(
            RESULT,
            "evict",
            {"uid": f"uid-{victim}", "ok": ok, "status": 429, "preemptor": f"uid-{preemptor}"},
        )

    @rule(seconds=st.sampled_from([0.5, 5, 40, 3600]))
    def time_passes(self, seconds: float) -> None:
        self.s.clock.advance(seconds)

    @rule()
    def step(self) -> None:
        for _ in range(3):
            self.s.step(0)

    @invariant()
    def sound(self) -> None:
        s = self.s
        if not hasattr(s, "snapshot"):
            return
        s.step(0)
        assert s.metrics.errors.labels("event")._value.get() == 0
        assert s.metrics.errors.labels("decide")._value.get() == 0
        snap = s.snapshot
        rows = snap.rows()
        free = snap.free[rows]
        assert (free >= 0).all() and (free <= 1000).all()
        held = np.zeros_like(snap.free)
        for p in snap.pods.values():
            r = snap.row(p.node)
            for g in p.gpus:
                held[r, g] += p.milli_per_gpu
        for r in rows:
            n = int(snap.gpu_count[r])
            assert (snap.free[r, :n] + held[r, :n] == 1000).all(), snap.names[r]
        for rec in s.pods:
            if rec.stage == "parked":
                assert rec.reason, rec.key
            if rec.node:
                assert rec.uid not in s.queue.active and rec.uid not in s.queue.parked


SchedulerMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestSchedulerProperties = SchedulerMachine.TestCase
