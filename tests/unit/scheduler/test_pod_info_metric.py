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
