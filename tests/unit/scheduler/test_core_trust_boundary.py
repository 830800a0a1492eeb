"""Tenant-written and broken objects against the scheduler core (issue 7, sections 1-3, 5).

Each case feeds the real core (real engine, real snapshot) with recorded
watch events; API writes are recorded. The integration tests repeat the
important ones against a real API server.
"""

from __future__ import annotations

from typing import Any

import pytest
from sched_builders import RecordingActions, make, node, pod, run, wlc

from ballast.api import wellknown as wk
from ballast.scheduler.actions import RESULT
from ballast.scheduler.core import Scheduler
from ballast.scheduler.informer import Event


def bound(
    name: str, node_name: str, gpus: int = 1, ids: str | None = None, **kw: Any
) -> dict[str, Any]:
    p = pod(name, gpus=gpus, node_name=node_name, **kw)
    if ids is not None:
        p["metadata"]["annotations"] = {"ballast.dev/gpu-ids": ids}
    return p


def free(s: Scheduler, name: str) -> list[int]:
    return [
        int(x)
        for x in s.snapshot.free[s.snapshot.row(name), : s.snapshot.gpu_count[s.snapshot.row(name)]]
    ]


@pytest.mark.parametrize(
    ("ids", "want_free", "want_warning"),
    [
        ("999", [0, 1000, 1000, 1000], True),  # out of range: lowest free GPU charged
        ("-1", [0, 1000, 1000, 1000], True),  # not an index
        ("2", [1000, 1000, 0, 1000], False),  # a valid claim is trusted
        ("0,0", [0, 1000, 1000, 1000], True),  # repeated
        ("x", [0, 1000, 1000, 1000], True),
        ("1,2", [0, 1000, 1000, 1000], True),  # two ids for one GPU
    ],
)
def test_bound_pod_gpu_ids_are_checked_against_the_node(
    ids: str, want_free: list[int], want_warning: bool
) -> None:
    s, actions, _ = make(("nodes", node("a", 4)), ("pods", bound("p", "a", ids=ids)))
    run(s)
    assert free(s, "a") == want_free
    assert (("p", "InvalidGPUAssignment") in actions.events) is want_warning


def test_ids_colliding_with_another_pod_charge_other_free_gpus() -> None:
    s, actions, _ = make(
        ("nodes", node("a", 4)),
        ("pods", bound("first", "a", ids="1")),
        ("pods", bound("second", "a", gpus=2, ids="1,2")),
    )
    run(s)
    # second claims GPU 1, which first holds: it is charged 0 and 2 instead.
    assert free(s, "a") == [0, 0, 0, 1000]
    assert ("second", "InvalidGPUAssignment") in actions.events
    # Nothing is handed out twice afterwards.
    q_pods = [("pods", pod(f"new{i}")) for i in range(3)]
    for kind, obj in q_pods:
        s.events.put(Event(kind, "ADDED", obj))
    run(s)
    assert [b[2][wk.GROUP + "/gpu-ids"] for b in actions.binds] == ["3"]


def test_a_bound_pod_on_a_full_node_never_over_commits() -> None:
    s, actions, _ = make(
        ("nodes", node("a", 2)),
        ("pods", bound("x", "a", gpus=2)),
        ("pods", bound("y", "a", gpus=1, ids="0")),
    )
    run(s)
    assert min(free(s, "a")) >= 0
    assert any(n == "y" and "too few free GPUs" in note for n, _, note in actions.notes)


def test_garbage_share_annotation_on_a_bound_pod_is_charged_a_whole_gpu() -> None:
    p = bound("p", "a", gpus=0)
    p["metadata"]["annotations"] = {wk.ANNOTATION_GPU_MILLI: "lots"}
    s, _actions, _ = make(("nodes", node("a", 2)), ("pods", p))
    run(s)
    assert sorted(free(s, "a")) == [0, 1000]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p["metadata"].__setitem__("labels", ["not", "a", "map"]),
        lambda p: p["metadata"].__setitem__("annotations", {"ballast.dev/gpu-milli": 5}),
        lambda p: p["spec"].__setitem__("containers", "nope"),
        lambda p: p["spec"]["containers"][0]["resources"]["limits"].__setitem__("cpu", "1e999"),
        lambda p: p["spec"]["containers"][0]["resources"]["limits"].__setitem__("memory", "nan"),
        lambda p: p["spec"].__setitem__("tolerations", [1, None, {"key": 5}]),
        lambda p: p["spec"].__setitem__(
            "affinity",
            {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [{"operator": "In"}]}]
                    }
                }
            },
        ),
        lambda p: p["spec"].__setitem__("priority", "high"),
        lambda p: p.__setitem__("status", None),
    ],
)
def test_malformed_pods_never_raise_and_ordinary_work_is_placed(mutate: Any) -> None:
    bad = pod("bad")
    mutate(bad)
    s, actions, _ = make(("nodes", node("a", 2)), ("pods", bad), ("pods", pod("good")))
    run(s)
    assert "good" in [b[0] for b in actions.binds]
    assert s.metrics.errors.labels("event")._value.get() == 0


def test_garbage_node_data_is_neutral_and_reported() -> None:
    n = node("huge", 8)
    n["status"]["allocatable"][wk.GPU_RESOURCE] = "100000"
    n["metadata"]["labels"][wk.LABEL_GPU_MEMORY_MIB] = "-5"
    s, actions, _ = make(("nodes", n), ("nodes", node("a", 1)), ("pods", pod("p")))
    run(s)
    assert actions.binds[0][1] == "a"
    assert ("huge", "InvalidNodeData") in actions.events
    assert s.snapshot.free.shape[1] <= 64


def test_an_exception_in_one_event_is_counted_and_the_loop_goes_on(monkeypatch: Any) -> None:
    s, actions, q = make(("nodes", node("a", 2)))
    run(s)
    real = s._on_pod
    calls = {"n": 0}

    def flaky(deleted: bool, raw: dict[str, Any]) -> None:
        if raw["metadata"]["name"] == "boom" and calls["n"] == 0:
            calls["n"] += 1
            raise RuntimeError("injected")
        real(deleted, raw)

    monkeypatch.setattr(s, "_on_pod", flaky)
    q.put(Event("pods", "ADDED", pod("boom")))
    q.put(Event("pods", "ADDED", pod("fine")))
    run(s)
    assert [b[0] for b in actions.binds] == ["fine"]
    assert s.metrics.errors.labels("event")._value.get() == 1
    s.clock.advance(5)  # the failed event is handled again after its backoff
    run(s)
    assert sorted(b[0] for b in actions.binds) == ["boom", "fine"]


def test_an_exception_in_a_decision_backs_off_and_retries(monkeypatch: Any) -> None:
    s, actions, _q = make(("nodes", node("a", 2)), ("pods", pod("p")))
    real = s.engine.decide
    calls = {"n": 0}

    def flaky(*a: Any, **k: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("injected")
        return real(*a, **k)

    monkeypatch.setattr(s.engine, "decide", flaky)
    run(s)
    assert actions.binds == [] and s.metrics.errors.labels("decide")._value.get() == 1
    run(s)
    assert actions.binds == []  # backing off, not a hot loop
    s.clock.advance(5)
    run(s)
    assert [b[0] for b in actions.binds] == ["p"]


# ----------------------------------------------------------------- custom resources


def window(name: str, schedule: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"schedule": schedule, "duration": "1h", "timeZone": "UTC", **spec},
    }


@pytest.mark.parametrize(
    "win",
    [
        window("never", "0 0 30 2 *"),
        window(
            "never",
            "0 1 * * *",
            extraOpenings=[{"start": "9999-12-31T23:00:00Z", "duration": "2h"}],
        ),
        {"metadata": {"name": "never"}, "spec": "garbage"},
    ],
)
def test_a_window_that_cannot_be_computed_holds_its_pods_with_a_reason(win: dict[str, Any]) -> None:
    s, actions, _ = make(
        ("nodes", node("a", 2)),
        ("batchwindows", win),
        ("workloadclasses", wlc("batch", tier="Offline", window="never")),
        ("pods", pod("b", cls="batch")),
        ("pods", pod("other")),
    )
    run(s)
    assert [b[0] for b in actions.binds] == ["other"]
    reason = actions.conditions["b"][0]
    assert reason in ("InvalidSchedule", "WindowClosed")
    assert s.metrics.errors.labels("event")._value.get() == 0


def test_namespace_selector_keeps_other_tenants_out_of_a_class() -> None:
    chat = wlc("chat", tier="Interactive", namespaceSelector={"matchLabels": {"team": "web"}})
    web = {"metadata": {"name": "web", "labels": {"team": "web"}}}
    other = {"metadata": {"name": "mallory", "labels": {}}}
    s, actions, q = make(
        ("nodes", node("a", 4)),
        ("workloadclasses", chat),
        ("namespaces", web),
        ("namespaces", other),
        ("pods", pod("ok", cls="chat", ns="web")),
        ("pods", pod("sneaky", cls="chat", ns="mallory")),
    )
    run(s)
    assert [b[0] for b in actions.binds] == ["ok"]
    assert actions.conditions["sneaky"][0] == "ClassNotAllowed"
    # Labelling the namespace lets it in.
    q.put(
        Event(
            "namespaces", "MODIFIED", {"metadata": {"name": "mallory", "labels": {"team": "web"}}}
        )
    )
    run(s)
    assert sorted(b[0] for b in actions.binds) == ["ok", "sneaky"]


def test_match_expressions_selector_and_a_broken_one() -> None:
    sel = {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold"]}]}
    broken = {"matchExpressions": [{"key": "tier", "operator": "Exists", "values": ["x"]}]}
    s, actions, _ = make(
        ("nodes", node("a", 4)),
        ("workloadclasses", wlc("gold", tier="Nearline", namespaceSelector=sel)),
        ("workloadclasses", wlc("bad", tier="Nearline", namespaceSelector=broken)),
        ("namespaces", {"metadata": {"name": "g", "labels": {"tier": "gold"}}}),
        ("pods", pod("in", cls="gold", ns="g")),
        ("pods", pod("out", cls="gold", ns="h")),
        ("pods", pod("nobody", cls="bad", ns="g")),
    )
    run(s)
    assert [b[0] for b in actions.binds] == ["in"]
    assert actions.conditions["out"][0] == "ClassNotAllowed"
    assert actions.conditions["nobody"][0] == "InvalidClass"


def test_a_parked_pod_sees_its_class_deleted() -> None:
    cls = wlc("batch", tier="Offline")
    s, actions, q = make(("nodes", node("a", 1)), ("pods", pod("t", node_name="a")), ("workloadclasses", cls),
                         ("pods", pod("b", cls="batch")))  # fmt: skip
    run(s)
    assert actions.conditions["b"][0] == "Unschedulable"
    q.put(Event("workloadclasses", "DELETED", cls))
    run(s)
    assert actions.conditions["b"][0] == "UnknownClass"


def test_quota_owner_is_the_oldest_quota_whatever_the_order() -> None:
    def quota(name: str, created: str, gpus: int) -> dict[str, Any]:
        return {"metadata": {"name": name, "creationTimestamp": created},
                "spec": {"gpus": gpus, "namespaces": ["team"]}}  # fmt: skip

    for order in ((0, 1), (1, 0)):
        qs = [
            quota("zz-old", "2026-01-01T00:00:00Z", 1),
            quota("aa-new", "2026-02-01T00:00:00Z", 4),
        ]
        s, actions, _ = make(("nodes", node("a", 4)), *[("gpuquotas", qs[i]) for i in order],
                             *[("pods", pod(f"p{i}")) for i in range(3)])  # fmt: skip
        run(s)
        assert len(actions.binds) == 1  # zz-old's 1 GPU applies, not aa-new's 4
        assert s.policies.tenant("team") == "zz-old"
        assert s.policies.tenant("elsewhere") == "namespace/elsewhere"


# ------------------------------------------------------------------------ preemption


def _preemption_setup(grace: int = 10) -> tuple[Scheduler, RecordingActions, Any]:
    objs = [
        ("workloadclasses", wlc("off", tier="Offline", preemption={"gracePeriodSeconds": grace})),
        ("workloadclasses", wlc("chat", tier="Interactive", preemption={"policy": "LowerTier"})),
        ("nodes", node("a", 2)),
        ("pods", pod("victim", gpus=2, cls="off", node_name="a")),
        ("pods", pod("chat", gpus=2, cls="chat")),
    ]
    s, actions, q = make(*objs)
    run(s)
    assert actions.conditions["chat"][0] == "Preempting"
    assert actions.checkpoints == ["victim"]
    return s, actions, q


def test_a_deleted_preemptor_cancels_its_plan() -> None:
    s, actions, q = _preemption_setup()
    q.put(Event("pods", "DELETED", pod("chat", gpus=2, cls="chat")))
    run(s)
    s.clock.advance(30)
    run(s)
    assert actions.evictions == [] and actions.withdrawn == ["victim"]
    assert len(s.preemptions) == 0 and not s.preemptions.claimed()


def test_a_preemptor_placed_elsewhere_cancels_its_plan() -> None:
    s, actions, q = _preemption_setup()
    q.put(Event("nodes", "ADDED", node("b", 2)))
    run(s)
    assert ("chat", "b") in [(b[0], b[1]) for b in actions.binds]
    s.clock.advance(30)
    run(s)
    assert actions.evictions == [] and actions.withdrawn == ["victim"]


def test_refused_evictions_back_off_then_the_plan_is_made_again() -> None:
    s, actions, q = _preemption_setup(grace=0)
    for _ in range(3):
        s.clock.advance(0.1)
        run(s, 2)
        q.put(Event(RESULT, "evict", {"uid": "uid-victim", "ok": False, "status": 429,
                                      "preemptor": "uid-chat"}))  # fmt: skip
        run(s, 2)
    # Backed off: 1 s, 2 s, 4 s between attempts, not a retry every cycle.
    n = len(actions.evictions)
    run(s, 5)
    assert len(actions.evictions) == n
    s.clock.advance(60)
    run(s, 3)
    assert len(actions.evictions) > n


def test_an_expired_plan_is_replanned() -> None:
    s, actions, _q = _preemption_setup(grace=1)
    s.clock.advance(2)
    run(s)
    assert actions.evictions == ["victim"]  # sent, but the victim never leaves
    s.clock.advance(60)
    run(s)
    assert ("chat", "PreemptionRetried") in actions.events


def test_a_fenced_bind_is_undone_and_a_lapsed_claim_decides_nothing() -> None:
    s, actions, q = make(("nodes", node("a", 1)), ("pods", pod("p")))
    run(s)
    assert [b[0] for b in actions.binds] == ["p"]
    q.put(Event(RESULT, "bind", {"uid": "uid-p", "ok": False, "status": 0, "fenced": True}))
    actions.lost_lease = True
    run(s)
    assert "uid-p" not in s.snapshot.pods  # the GPU is free again
    assert len(actions.binds) == 1  # and nothing is decided without the lease
    actions.lost_lease = False
    run(s)
    assert len(actions.binds) == 2
