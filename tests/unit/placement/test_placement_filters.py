"""Table tests for every filter plugin: which nodes pass, and the reason for the others."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from placement_builders import NOW, NodeBuilder, PodBuilder, make_node, make_pod, snapshot

from ballast.api.wellknown import LABEL_ZONE
from ballast.placement.engine import Engine
from ballast.placement.framework import Code, status_for
from ballast.placement.objects import ClassPolicy, PoolPolicy, ScoringPolicy
from ballast.placement.registry import default_registry


@dataclass
class Case:
    name: str
    plugin: str
    nodes: list[NodeBuilder]
    pod: PodBuilder
    want_pass: set[str]
    want_reasons: dict[str, str] = field(default_factory=dict)
    cls: ClassPolicy = field(default_factory=ClassPolicy)
    assumed: list[tuple[PodBuilder, str, tuple[int, ...]]] = field(default_factory=list)


CASES = [
    Case(
        "whole GPUs: enough fully free GPUs",
        "GPUFit",
        [make_node("a").gpus(2), make_node("b").gpus(8), make_node("cpu").gpus(0)],
        make_pod("p").gpu(4),
        want_pass={"b"},
        want_reasons={"a": "insufficient GPUs", "cpu": "no GPUs"},
    ),
    Case(
        "share: needs one GPU with room, not room spread over GPUs",
        "GPUFit",
        [make_node("a").gpus(2), make_node("b").gpus(1)],
        make_pod("p").share(600),
        assumed=[
            (make_pod("x").share(500), "a", (0,)),
            (make_pod("y").share(500), "a", (1,)),
            (make_pod("z").share(300), "b", (0,)),
        ],
        want_pass={"b"},
        want_reasons={"a": "insufficient GPU share"},
    ),
    Case(
        "cpu and memory count for CPU-only pods too",
        "GPUFit",
        [
            make_node("small").cpu(4000, 8192),
            make_node("lowmem").cpu(64000, 1024),
            make_node("big").cpu(64000, 65536),
        ],
        make_pod("p").cpu(8000, 4096),
        want_pass={"big"},
        want_reasons={"small": "insufficient cpu", "lowmem": "insufficient memory"},
    ),
    Case(
        "GPU model: pod alternatives",
        "GPUModel",
        [
            make_node("t4").gpus(2, "T4"),
            make_node("v100").gpus(8, "V100M32"),
            make_node("g2").gpus(8, "G2"),
        ],
        make_pod("p").gpu(1).products("T4", "V100M32"),
        want_pass={"t4", "v100"},
        want_reasons={"g2": "GPU model mismatch"},
    ),
    Case(
        "GPU model: pod and pool intersect",
        "GPUModel",
        [make_node("t4").gpus(2, "T4"), make_node("v100").gpus(8, "V100M32")],
        make_pod("p").gpu(1).products("T4", "V100M32"),
        cls=ClassPolicy("c", pool=PoolPolicy(gpu_products=("V100M32", "A100"))),
        want_pass={"v100"},
        want_reasons={"t4": "GPU model mismatch"},
    ),
    Case(
        "GPU model: CPU-only pods are not constrained",
        "GPUModel",
        [make_node("t4").gpus(2, "T4")],
        make_pod("p").cpu(1000).products("A100"),
        want_pass={"t4"},
    ),
    Case(
        "GPU memory: larger of pod and pool minimum; unknown memory fails",
        "GPUMemory",
        [
            make_node("80g").gpus(8, memory_mib=81920),
            make_node("24g").gpus(1, memory_mib=24576),
            make_node("unknown").gpus(1, memory_mib=0),
        ],
        make_pod("p").gpu(1).gpu_memory(20000),
        cls=ClassPolicy("c", pool=PoolPolicy(min_gpu_memory_mib=40000)),
        want_pass={"80g"},
        want_reasons={"24g": "insufficient GPU memory", "unknown": "insufficient GPU memory"},
    ),
    Case(
        "pool: label must match the class pool",
        "NodePool",
        [make_node("chat").pool("chat"), make_node("batch").pool("batch"), make_node("none")],
        make_pod("p").gpu(1),
        cls=ClassPolicy("c", pool=PoolPolicy(name="chat")),
        want_pass={"chat"},
        want_reasons={"batch": "pool mismatch", "none": "pool mismatch"},
    ),
    Case(
        "pool: a class without a pool passes everywhere",
        "NodePool",
        [make_node("chat").pool("chat"), make_node("none")],
        make_pod("p").gpu(1),
        want_pass={"chat", "none"},
    ),
    Case(
        "taints: NoSchedule needs a toleration, PreferNoSchedule does not",
        "TaintToleration",
        [
            make_node("tainted").taint("gpu", "yes"),
            make_node("soft").taint("x", "", "PreferNoSchedule"),
            make_node("clean"),
        ],
        make_pod("p").gpu(1),
        want_pass={"soft", "clean"},
        want_reasons={"tainted": "untolerated taint"},
    ),
    Case(
        "taints: Equal toleration with the value, and Exists",
        "TaintToleration",
        [
            make_node("a").taint("gpu", "yes"),
            make_node("b").taint("team", "x").taint("gpu", "yes"),
            make_node("c").taint("gpu", "no"),
        ],
        make_pod("p").tolerate("gpu", "Equal", "yes").tolerate("team"),
        want_pass={"a", "b"},
        want_reasons={"c": "untolerated taint"},
    ),
    Case(
        "node selector",
        "NodeAffinity",
        [make_node("a").zone("z1"), make_node("b").zone("z2"), make_node("c")],
        make_pod("p").selector(**{LABEL_ZONE: "z1"}),
        want_pass={"a"},
        want_reasons={"b": "node affinity mismatch", "c": "node affinity mismatch"},
    ),
    Case(
        "required affinity: terms ORed, expressions ANDed, NotIn matches missing label",
        "NodeAffinity",
        [
            make_node("a").label("tier", "gold").label("zone", "z1"),
            make_node("b").label("tier", "gold").label("zone", "z2"),
            make_node("c").label("tier", "bronze"),
            make_node("d"),
        ],
        make_pod("p").affinity(
            (("tier", "In", ("gold",)), ("zone", "NotIn", ("z2",))),
            (("tier", "DoesNotExist", ()),),
        ),
        want_pass={"a", "d"},
        want_reasons={"b": "node affinity mismatch", "c": "node affinity mismatch"},
    ),
    Case(
        "required affinity: Exists on an unknown key matches nothing",
        "NodeAffinity",
        [make_node("a")],
        make_pod("p").affinity((("nope", "Exists", ()),)),
        want_pass=set(),
        want_reasons={"a": "node affinity mismatch"},
    ),
    Case(
        "residency: only listed regions",
        "DataResidency",
        [make_node("eu").region("eu-west"), make_node("us").region("us-east"), make_node("none")],
        make_pod("p").gpu(1),
        cls=ClassPolicy("c", placement=ScoringPolicy(residency_regions=("eu-west", "eu-central"))),
        want_pass={"eu"},
        want_reasons={"us": "outside residency regions", "none": "outside residency regions"},
    ),
    Case(
        "residency: zones within regions",
        "DataResidency",
        [
            make_node("a").region("eu-west").zone("eu-west-1a"),
            make_node("b").region("eu-west").zone("eu-west-1b"),
            make_node("c").region("us-east").zone("eu-west-1a"),
            make_node("d").region("eu-west"),
        ],
        make_pod("p").gpu(1),
        cls=ClassPolicy(
            "c",
            placement=ScoringPolicy(
                residency_regions=("eu-west",), residency_zones=("eu-west-1a",)
            ),
        ),
        want_pass={"a"},
        want_reasons={
            "b": "outside residency zones",
            "c": "outside residency regions",
            "d": "outside residency zones",
        },
    ),
    Case(
        "health: cordoned nodes are unschedulable",
        "NodeHealth",
        [make_node("a").cordoned(), make_node("b")],
        make_pod("p").cpu(100),
        want_pass={"b"},
        want_reasons={"a": "unschedulable"},
    ),
    Case(
        "health: a sick GPU is removed, even when the report that named it has gone stale",
        "NodeHealth",
        [
            make_node("sick").gpus(1).telemetry(sick=(0,)),
            make_node("stale").gpus(1).telemetry(age_s=3600, sick=(0,)),
            make_node("stale-ok").gpus(1).telemetry(age_s=3600),
            make_node("half").gpus(2).telemetry(sick=(0,)),
            make_node("none").gpus(1),
        ],
        make_pod("p").gpu(1),
        want_pass={"stale-ok", "half", "none"},
        want_reasons={"sick": "unhealthy", "stale": "unhealthy"},
    ),
    Case(
        "health: a class that requires fresh telemetry fails closed on stale and missing data",
        "NodeHealth",
        [
            make_node("fresh").gpus(1).telemetry(),
            make_node("stale").gpus(1).telemetry(age_s=3600),
            make_node("none").gpus(1),
            make_node("cordoned").gpus(1).cordoned(),
        ],
        make_pod("p").gpu(1),
        cls=ClassPolicy("strict", placement=ScoringPolicy(require_fresh_telemetry=True)),
        want_pass={"fresh"},
        want_reasons={
            "stale": "stale telemetry",
            "none": "stale telemetry",
            "cordoned": "unschedulable",
        },
    ),
    Case(
        "health: CPU-only pods may use a node with sick GPUs",
        "NodeHealth",
        [make_node("sick").gpus(1).telemetry(sick=(0,))],
        make_pod("p").cpu(100),
        want_pass={"sick"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_filter(case: Case) -> None:
    snap = snapshot(*case.nodes)
    for pod, node, gpus in case.assumed:
        snap.assume(pod.obj, node, gpus, start_time=0.0)
    engine = Engine("ballast", classes={case.cls.name: case.cls})
    pod = case.pod.cls(case.cls.name).obj
    state = engine.cycle(snap, pod, NOW)
    plugin = default_registry().filter(case.plugin)
    rows = snap.rows()
    codes = plugin.filter(state, rows)
    got_pass = {snap.names[r] for r, c in zip(rows, codes, strict=True) if c == 0}
    got_reasons = {
        snap.names[r]: status_for(plugin, int(c)).reason
        for r, c in zip(rows, codes, strict=True)
        if c
    }
    assert got_pass == case.want_pass
    assert got_reasons == case.want_reasons


def test_status_codes_say_whether_preemption_helps() -> None:
    fit = default_registry().filter("GPUFit")
    pool = default_registry().filter("NodePool")
    assert status_for(fit, 2).code is Code.UNSCHEDULABLE
    assert status_for(fit, 1).code is Code.UNRESOLVABLE
    assert status_for(pool, 1).code is Code.UNRESOLVABLE
    assert status_for(pool, 0).ok
