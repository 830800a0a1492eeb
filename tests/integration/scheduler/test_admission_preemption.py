"""Quota, borrowing and reclaim, batch windows, and tier preemption on a live cluster."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kutil import wait_for
from sutil import gpu_node, gpu_pod, node_of, pod, scheduler_view, wait_ready, waiting_reason, wlc

from ballast.api import wellknown as wk
from ballast.kube.raw import BATCHWINDOWS, GPUQUOTAS, NAMESPACES, PODS, Kube


@pytest.fixture
def namespaces(kube: Kube) -> Iterator[list[str]]:
    """Two fresh namespaces (tenants)."""
    names = [f"t-{uuid.uuid4().hex[:6]}", f"t-{uuid.uuid4().hex[:6]}"]
    for n in names:
        kube.create(
            NAMESPACES.path(), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
        )
    wait_for(
        lambda: all(kube.get(f"/api/v1/namespaces/{n}/serviceaccounts/default") for n in names),
        what="sa",
    )
    yield names
    for n in names:
        kube.delete(NAMESPACES.path(n))


def quota(kube: Kube, name: str, **spec: Any) -> None:
    kube.create(
        GPUQUOTAS.path(),
        {
            "apiVersion": "ballast.dev/v1alpha1",
            "kind": "GPUQuota",
            "metadata": {"name": name},
            "spec": spec,
        },
    )


def quota_seen(kube: Kube, name: str) -> None:
    """Wait until the scheduler has taken the quota in (it reports usage into its status)."""
    wait_for(
        lambda: "usedGPUs" in ((kube.get(GPUQUOTAS.path(name)) or {}).get("status") or {}),
        timeout=30,
        what=f"scheduler to report on GPUQuota {name}",
    )


def bound(kube: Kube, ns: str, names: list[str]) -> list[str]:
    return [n for n in names if node_of(kube, ns, n)]


def test_quota_holds_back_then_admits_when_freed(
    scheduler: Any, kube: Kube, namespaces: list[str], tid: str
) -> None:
    ns = namespaces[0]
    gpu_node(kube, f"q-{tid}", test=tid)
    wait_ready(kube, tid, 1)
    quota(kube, f"q-{tid}", namespaces=[ns], gpus=2)
    quota_seen(kube, f"q-{tid}")
    names = [f"p{i}" for i in range(3)]
    for n in names:
        gpu_pod(kube, ns, n, test=tid)
    wait_for(
        lambda: len(bound(kube, ns, names)) == 2,
        what="two bound",
        explain=lambda: scheduler_view(scheduler),
    )
    waiting = next(n for n in names if not node_of(kube, ns, n))
    cond = wait_for(
        lambda: waiting_reason(kube, ns, waiting, "QuotaExceeded"), what="QuotaExceeded"
    )
    assert "2/2" in cond["message"], cond["message"]
    status = wait_for(
        lambda: (
            (kube.get(GPUQUOTAS.path(f"q-{tid}")) or {}).get("status", {}).get("waitingGPUs") == 1
            and kube.get(GPUQUOTAS.path(f"q-{tid}"))
        ),
        what="quota status",
    )
    assert status["status"]["usedGPUs"] == 2
    kube.delete(PODS.path(next(n for n in names if n != waiting), ns), grace_seconds=0)
    wait_for(lambda: node_of(kube, ns, waiting), timeout=30, what="admitted after release")


def test_borrowing_and_reclaim(scheduler: Any, kube: Kube, namespaces: list[str], tid: str) -> None:
    borrower, lender = namespaces
    cohort = f"c-{tid}"
    wlc(
        kube,
        f"quick-{tid}",
        tier="Nearline",
        preemption={"gracePeriodSeconds": 1, "policy": "Never"},
    )
    gpu_node(kube, f"b-{tid}", test=tid, gpus=4)
    wait_ready(kube, tid, 1)
    quota(kube, f"borrower-{tid}", namespaces=[borrower], gpus=2, cohort=cohort, borrowingLimit=2)
    quota(kube, f"lender-{tid}", namespaces=[lender], gpus=2, cohort=cohort)
    quota_seen(kube, f"borrower-{tid}")
    quota_seen(kube, f"lender-{tid}")
    mine = [f"b{i}" for i in range(5)]
    for n in mine:
        gpu_pod(kube, borrower, n, test=tid, cls=f"quick-{tid}")
    # 2 of its own + 2 borrowed; the fifth is over its borrowing limit.
    wait_for(
        lambda: len(bound(kube, borrower, mine)) == 4,
        what="borrowed up to the limit",
        explain=lambda: scheduler_view(scheduler),
    )
    fifth = next(n for n in mine if not node_of(kube, borrower, n))
    wait_for(
        lambda: waiting_reason(kube, borrower, fifth, "QuotaExceeded"), what="over borrowing limit"
    )
    st = wait_for(
        lambda: (
            (kube.get(GPUQUOTAS.path(f"borrower-{tid}")) or {})
            .get("status", {})
            .get("borrowedGPUs")
            == 2
        ),
        what="borrowed in status",
    )
    assert st
    # The lender wants its quota back: borrowed pods are reclaimed by preemption.
    for n in ("l0", "l1"):
        gpu_pod(kube, lender, n, test=tid, cls=f"quick-{tid}")
    wait_for(lambda: len(bound(kube, lender, ["l0", "l1"])) == 2, timeout=60, what="lender placed")
    running = [n for n in mine if (p := pod(kube, borrower, n)) and p["spec"].get("nodeName")]
    assert len(running) <= 2, f"borrower still holds {running}"


def test_window_gates_offline_class(scheduler: Any, kube: Kube, namespace: str, tid: str) -> None:
    window, cls = f"w-{tid}", f"nightly-{tid}"
    opens = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=8)
    kube.create(BATCHWINDOWS.path(), {
        "apiVersion": "ballast.dev/v1alpha1", "kind": "BatchWindow", "metadata": {"name": window},
        "spec": {"schedule": "0 0 1 1 *", "duration": "1h", "extraOpenings": [{"start": opens.isoformat().replace("+00:00", "Z"), "duration": "1h"}]},
    })  # fmt: skip
    wlc(kube, cls, tier="Offline", window=window)
    gpu_node(kube, f"w-{tid}", test=tid)
    wait_ready(kube, tid, 1)
    time.sleep(0.5)
    gpu_pod(kube, namespace, "embed", test=tid, cls=cls)
    cond = wait_for(
        lambda: waiting_reason(kube, namespace, "embed", "WindowClosed"), what="WindowClosed"
    )
    assert window in cond["message"]
    assert dt.datetime.now(dt.UTC) < opens, (
        "the window opened before the check; the test is too slow"
    )
    wait_for(
        lambda: node_of(kube, namespace, "embed"), timeout=30, what="placed when the window opens"
    )
    assert dt.datetime.now(dt.UTC) >= opens


def test_interactive_preempts_offline_after_grace(
    scheduler: Any, kube: Kube, namespace: str, tid: str
) -> None:
    offline, nearline, chat = f"batch-{tid}", f"near-{tid}", f"chat-{tid}"
    wlc(kube, offline, tier="Offline", preemption={"gracePeriodSeconds": 3})
    wlc(kube, nearline, tier="Nearline", preemption={"policy": "LowerTier", "preemptible": False})
    wlc(kube, chat, tier="Interactive", preemption={"policy": "LowerTier", "preemptible": False})
    gpu_node(kube, f"full-{tid}", test=tid, gpus=4)
    wait_ready(kube, tid, 1)
    time.sleep(0.5)
    for i in range(2):
        gpu_pod(kube, namespace, f"near{i}", test=tid, cls=nearline)
    for i in range(2):
        gpu_pod(kube, namespace, f"off{i}", test=tid, cls=offline)
    fill = ["near0", "near1", "off0", "off1"]
    wait_for(lambda: len(bound(kube, namespace, fill)) == 4, what="node full")
    gpu_pod(kube, namespace, "chat", test=tid, cls=chat, gpus=2)

    def annotated() -> list[str]:
        return [
            n
            for n in fill
            if wk.ANNOTATION_CHECKPOINT_REQUEST
            in ((pod(kube, namespace, n) or {}).get("metadata", {}).get("annotations") or {})
        ]

    # The two checkpoint requests are written concurrently: wait for both.
    def both() -> list[str] | None:
        names = annotated()
        return names if len(names) >= 2 else None

    requested = wait_for(both, what="checkpoint requested")
    t_request = time.monotonic()
    assert sorted(requested) == ["off0", "off1"], requested  # never the Nearline pods
    c = wait_for(
        lambda: waiting_reason(kube, namespace, "chat", "Preempting"), what="Preempting condition"
    )
    assert "off0" in c["message"] and "off1" in c["message"]
    nominated = wait_for(
        lambda: (pod(kube, namespace, "chat") or {}).get("status", {}).get("nominatedNodeName"),
        what="nominated",
    )
    assert nominated == f"full-{tid}"
    time.sleep(1.0)
    assert pod(kube, namespace, "off0") is not None, "evicted before the grace period"
    wait_for(lambda: node_of(kube, namespace, "chat"), timeout=30, what="chat placed")
    assert time.monotonic() - t_request >= 2.5
    assert all(
        pod(kube, namespace, n) is None
        or (pod(kube, namespace, n) or {}).get("metadata", {}).get("deletionTimestamp")
        for n in ("off0", "off1")
    )
    assert bound(kube, namespace, ["near0", "near1"]) == ["near0", "near1"]


def test_lower_tier_never_preempts_higher(
    scheduler: Any, kube: Kube, namespace: str, tid: str
) -> None:
    chat, nearline = f"chat-{tid}", f"near-{tid}"
    wlc(kube, chat, tier="Interactive", preemption={"policy": "LowerTier", "preemptible": True})
    wlc(kube, nearline, tier="Nearline", preemption={"policy": "LowerPriority"})
    gpu_node(kube, f"hi-{tid}", test=tid, gpus=2)
    wait_ready(kube, tid, 1)
    time.sleep(0.5)
    for i in range(2):
        gpu_pod(kube, namespace, f"chat{i}", test=tid, cls=chat)
    wait_for(
        lambda: len(bound(kube, namespace, ["chat0", "chat1"])) == 2, what="full of Interactive"
    )
    gpu_pod(kube, namespace, "summary", test=tid, cls=nearline)
    wait_for(
        lambda: waiting_reason(kube, namespace, "summary", "Unschedulable"), what="Unschedulable"
    )
    for n in ("chat0", "chat1"):
        ann = (pod(kube, namespace, n) or {}).get("metadata", {}).get("annotations") or {}
        assert wk.ANNOTATION_CHECKPOINT_REQUEST not in ann
