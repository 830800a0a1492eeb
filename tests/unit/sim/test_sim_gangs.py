"""Gangs in the simulator: all or nothing against pod by pod on the same stream."""

from __future__ import annotations

from ballast.sim.gangs import GangJob, nodes, replay, stream


def test_two_gangs_deadlock_pod_by_pod_but_not_all_or_nothing() -> None:
    jobs = [GangJob("a", 0.0, 3, 8, 600.0), GangJob("b", 0.0, 3, 8, 600.0)]
    pod_by_pod = replay(jobs, nodes(4), "pod-by-pod")
    assert pod_by_pod.deadlocked == 2 and pod_by_pod.started == 0
    whole = replay(jobs, nodes(4), "ballast")
    assert whole.deadlocked == 0 and whole.started == 2
    assert whole.idle_gpu_hours_partial == 0.0
    assert sorted(whole.start_waits_s) == [0.0, 600.0]  # the second starts when the first ends


def test_partial_groups_hold_idle_gpus_only_pod_by_pod() -> None:
    jobs = stream(3, 40, mean_gap_s=90)
    whole = replay(jobs, nodes(4), "ballast")
    pod_by_pod = replay(jobs, nodes(4), "pod-by-pod")
    assert whole.groups == pod_by_pod.groups > 0
    assert whole.idle_gpu_hours_partial == 0.0
    assert pod_by_pod.idle_gpu_hours_partial > 0.0
    assert whole.started == whole.groups  # every group started in the end
