"""Derived workload mixes: the trace's own pods, in order, with the stated property."""

from __future__ import annotations

import pytest

from ballast.placement.objects import Pod
from ballast.sim.mixes import MIXES, keep


def trace() -> list[Pod]:
    shapes = [(0, 0), (1, 0), (0, 500), (2, 0), (8, 0), (4, 0), (0, 250), (1, 0)]
    return [
        Pod("t", f"p{i}", f"p{i}", gpus=g, gpu_milli=m, cpu_milli=1000,
            gpu_products=("T4",) if i % 3 == 0 and (g or m) else ())
        for i, (g, m) in enumerate(shapes * 50)
    ]  # fmt: skip


CHECKS = {
    "shares-only": lambda p: not p.gpus,
    "whole-only": lambda p: not p.gpu_milli,
    "few-multi": lambda p: True,
    "multi-only": lambda p: p.gpus >= 2 or not p.demand_milli,
    "single-only": lambda p: p.gpus < 2,
    "unconstrained": lambda p: not p.gpu_products,
}


@pytest.mark.parametrize("name", sorted(MIXES))
def test_mix_keeps_order_and_its_property(name: str) -> None:
    pods = trace()
    got = MIXES[name].derive(pods, 0)
    assert got and all(CHECKS[name](p) for p in got)
    index = {p.name: i for i, p in enumerate(pods)}
    assert [index[p.name] for p in got] == sorted(index[p.name] for p in got)
    assert got == MIXES[name].derive(pods, 0)


def test_cpu_only_pods_follow_the_demand_kept() -> None:
    pods = trace()
    cpu = sum(1 for p in pods if not p.demand_milli)
    demand = sum(p.demand_milli for p in pods)
    multi = keep(pods, lambda p: p.gpus >= 2, seed=0)
    kept = sum(p.demand_milli for p in multi) / demand
    got = sum(1 for p in multi if not p.demand_milli) / cpu
    assert abs(got - kept) < 0.2
    assert len(keep(pods, lambda p: True, seed=0)) == len(pods)


def test_few_multi_keeps_about_one_in_ten() -> None:
    pods = trace()
    multi = sum(1 for p in pods if p.gpus >= 2)
    kept = sum(1 for p in MIXES["few-multi"].derive(pods, 0) if p.gpus >= 2)
    assert 0 < kept < multi / 4
