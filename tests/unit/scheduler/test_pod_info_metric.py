"""ballast_scheduler_pod_info: GPU pods with their class, rendered from the snapshot at scrape."""

from __future__ import annotations

import threading

from prometheus_client import generate_latest

from ballast.placement.state import Placement
from ballast.scheduler.metrics import SchedulerMetrics


def placed(name: str, gpus: tuple[int, ...]) -> Placement:
    return Placement(f"uid-{name}", "team-a", name, "chat", "Interactive", 0, "n1", gpus,
                     1000 if gpus else 0, 100, 128, 0.0)  # fmt: skip


def test_pod_info_lists_gpu_pods_with_class_and_tier() -> None:
    pods = {"g": placed("gpu", (0,)), "c": placed("cpu", ())}
    metrics = SchedulerMetrics()
    metrics.watch_pods(lambda: pods.values(), threading.RLock())
    text = generate_latest(metrics.registry).decode()
    lines = [line for line in text.splitlines() if line.startswith("ballast_scheduler_pod_info{")]
    assert lines == [
        'ballast_scheduler_pod_info{class="chat",namespace="team-a",node="n1",pod="gpu",'
        'tier="Interactive"} 1.0'
    ]
    pods.clear()
    assert "ballast_scheduler_pod_info{" not in generate_latest(metrics.registry).decode()


def test_pod_gpus_counts_gpus_held_with_the_node_gpu_model() -> None:
    whole = placed("whole", (0, 1))
    share = Placement("uid-s", "team-a", "share", "chat", "Interactive", 0, "n2", (3,),
                      250, 100, 128, 0.0)  # fmt: skip
    pods = {"w": whole, "s": share, "c": placed("cpu", ())}
    metrics = SchedulerMetrics()
    models = {"n1": "NVIDIA-H100-80GB-HBM3"}
    metrics.watch_pods(lambda: pods.values(), threading.RLock(), lambda n: models.get(n, ""))
    text = generate_latest(metrics.registry).decode()
    lines = sorted(
        line for line in text.splitlines() if line.startswith("ballast_scheduler_pod_gpus{")
    )
    assert lines == [
        'ballast_scheduler_pod_gpus{class="chat",model="",namespace="team-a",node="n2",pod="share",'
        'tier="Interactive"} 0.25',
        'ballast_scheduler_pod_gpus{class="chat",model="NVIDIA-H100-80GB-HBM3",namespace="team-a",'
        'node="n1",pod="whole",tier="Interactive"} 2.0',
    ]


def test_node_model_reads_the_snapshot_product() -> None:
    from ballast.placement.objects import NodeInfo
    from ballast.placement.snapshot import Snapshot
    from ballast.scheduler.metrics import node_model

    snap = Snapshot()
    snap.add_node(NodeInfo("n1", gpu_count=8, labels={"nvidia.com/gpu.product": "NVIDIA-L4"}))
    model = node_model(lambda: snap)
    assert model("n1") == "NVIDIA-L4"
    assert model("missing") == ""
