"""``preemption.forLocality`` live: a serving pod evicts an Offline pod where its model is cached."""

from __future__ import annotations

import time

from kutil import wait_for
from sutil import gpu_node, gpu_pod, node_of, pod, pod_events, scheduler_view, wait_ready, wlc

from ballast.kube.raw import Kube
from ballast.localcluster.ballast_procs import BallastProcess


def test_serving_pod_preempts_on_the_warm_node_instead_of_cold_starting(
    scheduler: BallastProcess, kube: Kube, namespace: str, tid: str
) -> None:
    off, chat = f"off-{tid}", f"chat-{tid}"
    wlc(kube, off, tier="Offline", preemption={"gracePeriodSeconds": 2})
    wlc(kube, chat, tier="Interactive",
        preemption={"policy": "LowerTier", "preemptible": False, "forLocality": True})  # fmt: skip
    warm, cold = f"warm-{tid}", f"cold-{tid}"
    gpu_node(kube, warm, test=tid, gpus=1, models=("llama-70b",))
    gpu_node(kube, cold, test=tid, gpus=1)
    wait_ready(kube, tid, 2)
    time.sleep(0.5)
    # The Offline pod can only go to the warm node (the cold one is taken first).
    gpu_pod(kube, namespace, "filler", test=tid, cls=off, labels={"x": "y"})
    gpu_pod(kube, namespace, "batch", test=tid, cls=off)
    wait_for(lambda: node_of(kube, namespace, "filler") and node_of(kube, namespace, "batch"),
             timeout=30, what="both Offline pods placed")  # fmt: skip
    victim = "filler" if node_of(kube, namespace, "filler") == warm else "batch"
    # Free the cold node: the serving pod would fit there, cold.
    other = "batch" if victim == "filler" else "filler"
    kube.delete(f"/api/v1/namespaces/{namespace}/pods/{other}")
    wait_for(lambda: pod(kube, namespace, other) is None, timeout=30, what="cold node freed")
    gpu_pod(kube, namespace, "chat-0", test=tid, cls=chat, models=("llama-70b",))
    wait_for(lambda: node_of(kube, namespace, "chat-0"), timeout=60,
             what="serving pod placed", explain=lambda: scheduler_view(scheduler))  # fmt: skip
    events = [(e["reason"], e.get("note")) for e in pod_events(kube, namespace, "chat-0")]
    assert node_of(kube, namespace, "chat-0") == warm, events
    gone = pod(kube, namespace, victim)
    assert gone is None or gone["metadata"].get("deletionTimestamp"), "the Offline pod was evicted"
