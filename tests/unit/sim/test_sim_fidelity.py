"""The pure half of the fidelity bench: workload, configuration, figures, decision check."""

from __future__ import annotations

import pytest

from ballast.api import wellknown as wk
from ballast.localcluster.nodes import NodeSpec
from ballast.placement.objects import MILLI, Pod
from ballast.placement.profiles import BALLAST, KUBE_DEFAULT, KUBE_GPU_BINPACK
from ballast.sim import fidelity as fid


def spec(name: str, gpus: int, product: str = "G2") -> NodeSpec:
    return NodeSpec(
        name=name, product=product, gpus=gpus, gpu_memory_mib=32768, cpu_milli=96000,
        memory_mib=1 << 19, zone="zone-0", region="r", cache=wk.CacheInventory(0, ()),
        telemetry=wk.NodeTelemetry(None, ()),  # type: ignore[arg-type]
    )  # fmt: skip


def pod(i: int, gpus: int = 0, milli: int = 0, cpu: int = 4000, mem: int = 8192) -> Pod:
    return Pod("t", f"p{i}", f"p{i}", gpus=gpus, gpu_milli=milli, cpu_milli=cpu, memory_mib=mem)


def test_workload_drops_shares_and_requestless_pods_and_stops_at_demand() -> None:
    pods = [pod(0, 1), pod(1, milli=500), pod(2, 2, mem=0), pod(3), pod(4, 4), pod(5, 1)]
    got = fid.whole_gpu_workload(pods, 5 * MILLI, 100.0)
    assert [p.name for p in got] == ["p0", "p3", "p4"]


def test_scheduler_config_of_each_kube_profile() -> None:
    assert fid.scheduler_config(KUBE_DEFAULT) == {
        "profiles": [{"schedulerName": "default-scheduler"}]
    }
    fit = fid.scheduler_config(KUBE_GPU_BINPACK)["profiles"][0]["pluginConfig"]
    assert fit == [
        {
            "name": "NodeResourcesFit",
            "args": {
                "scoringStrategy": {
                    "type": "MostAllocated",
                    "resources": [
                        {"name": "cpu", "weight": 1},
                        {"name": "memory", "weight": 1},
                        {"name": "nvidia.com/gpu", "weight": 5},
                    ],
                }
            },
        }
    ]
    with pytest.raises(ValueError, match="not a kube-scheduler configuration"):
        fid.scheduler_config(BALLAST)


def test_figures_follow_the_arrival_curve() -> None:
    pods = [pod(0, 4), pod(1, 4), pod(2), pod(3, 2)]
    f = fid.figures(pods, [True, False, True, True], 10 * MILLI)
    # arrived 40, 80, 100 % of capacity; unallocated 60, 60, 40 %
    assert (f.final_pct, f.placed, f.failed) == (40.0, 3, 1)
    assert f.window_pct == pytest.approx(60.0)


@pytest.mark.parametrize("policy", ["kube-default", "kube-gpu-binpack"])
def test_a_simulated_run_agrees_with_itself_and_a_wrong_one_does_not(policy: str) -> None:
    nodes = fid.node_infos([spec(f"n{i}", 8) for i in range(4)])
    pods = [pod(i, 1 + i % 3) for i in range(12)]
    run = fid.simulate(nodes, pods, policy, seed=3)
    assert all(run)
    a = fid.agreement(nodes, pods, run, policy)
    assert (a.decisions, a.matching, a.first_mismatch) == (12, 12, "")
    # Everything on one node is what bin-packing does and spreading does not.
    ones = [pod(i, 1) for i in range(12)]
    packed = ["n0"] * 8 + ["n1"] * 4
    b = fid.agreement(nodes, ones, packed, "kube-default")
    assert b.matching < 12 and b.first_mismatch
