"""Property tests: capacity and filters hold, preemption respects classes, quotas hold, determinism."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from placement_builders import NOW, make_node, make_pod, snapshot
from placement_frag_reference import node_frag

from ballast.api.wellknown import LABEL_POOL, LABEL_ZONE
from ballast.placement.admission import QuotaSet, admit
from ballast.placement.engine import Engine
from ballast.placement.fragmentation import WorkloadMix, delta_node, delta_share, expected_frag
from ballast.placement.objects import (
    TIER_RANK,
    ClassPolicy,
    NodeInfo,
    Pod,
    PoolPolicy,
    PreemptionPolicy,
    QuotaPolicy,
)
from ballast.placement.preemption import plan_preemption
from ballast.placement.profiles import PROFILES
from ballast.placement.queue import rank
from ballast.placement.snapshot import Snapshot

PRODUCTS = ("A100", "T4", "L40S")
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _node(i: int, g: int, prod: str, cpu: int, zone: str, pool: str, taint: bool, cordon: bool):  # type: ignore[no-untyped-def]
    b = make_node(f"n{i}").gpus(g, prod, 16384 if prod == "T4" else 81920).cpu(cpu, 65536)
    b.zone(zone).label("idx", str(i % 3))
    if pool:
        b.pool(pool, taint=taint)
    return b.cordoned() if cordon else b


node_st = st.builds(
    _node,
    st.integers(0, 10**6),
    st.sampled_from((0, 1, 2, 4, 8)),
    st.sampled_from(PRODUCTS),
    st.sampled_from((8000, 32000, 96000)),
    st.sampled_from(("z1", "z2")),
    st.sampled_from(("", "", "chat")),
    st.booleans(),
    st.booleans(),
)


@st.composite
def pods(draw: st.DrawFn, n: int) -> Pod:
    kind = draw(st.sampled_from(("whole", "share", "cpu")))
    b = make_pod(f"p{n}").cpu(
        draw(st.sampled_from((0, 2000, 16000))), draw(st.sampled_from((0, 4096)))
    )
    if kind == "whole":
        b.gpu(draw(st.sampled_from((1, 2, 4, 8))))
    elif kind == "share":
        b.share(draw(st.integers(1, 999)))
    if draw(st.booleans()):
        b.products(*draw(st.sets(st.sampled_from(PRODUCTS), min_size=1)))
    if draw(st.booleans()):
        b.gpu_memory(draw(st.sampled_from((10000, 40000))))
    if draw(st.booleans()):
        b.selector(**{LABEL_ZONE: draw(st.sampled_from(("z1", "z2")))})
    if draw(st.booleans()):
        b.affinity((("idx", draw(st.sampled_from(("In", "NotIn"))), ("0", "1")),))
    if draw(st.booleans()):
        b.tolerate(LABEL_POOL)
    b.cls(draw(st.sampled_from(("", "chat"))))
    return b.obj


def _allowed(pod: Pod, node: NodeInfo, cls: ClassPolicy) -> bool:
    """The filters' contract, restated plainly."""
    gpu = pod.gpus or pod.gpu_milli
    if node.unschedulable:
        return False
    if cls.pool.name and node.labels.get(LABEL_POOL) != cls.pool.name:
        return False
    for t in node.taints:
        if not any(tol.tolerates(t) for tol in pod.tolerations):
            return False
    if any(node.labels.get(k) != v for k, v in pod.node_selector.items()):
        return False
    for term in pod.affinity:
        for r in term.match_expressions:
            has = r.key in node.labels and node.labels[r.key] in r.values
            if (r.operator == "In" and not has) or (r.operator == "NotIn" and has):
                return False
    if gpu and pod.gpu_products and node.product not in pod.gpu_products:
        return False
    need = max(pod.min_gpu_memory_mib, cls.pool.min_gpu_memory_mib)
    return not (gpu and node.gpu_memory_mib < need)


CLASSES = {"chat": ClassPolicy("chat", "Interactive", pool=PoolPolicy(name="chat"))}


@SETTINGS
@given(
    nodes=st.lists(node_st, min_size=1, max_size=8, unique_by=lambda b: b.kw["name"]),
    data=st.data(),
    policy=st.sampled_from(sorted(PROFILES)),
)
def test_placements_respect_capacity_and_filters(nodes, data, policy) -> None:  # type: ignore[no-untyped-def]
    snap = snapshot(*nodes)
    infos = {b.kw["name"]: b.obj for b in nodes}
    engine = Engine(policy, CLASSES)
    for n in range(12):
        pod = data.draw(pods(n))
        snap.mix.observe(pod)
        d = engine.decide(snap, pod, now=NOW, seed=n)
        if d.node is None:
            assert d.feasible == 0 and sum(d.rejections.values()) == d.nodes_total
            continue
        assert _allowed(pod, infos[d.node], engine.class_of(pod))
        assert snap.fits(pod, d.node, d.gpus) == ""
        snap.assume(pod, d.node, d.gpus, start_time=0.0)
        rows = snap.rows()
        assert (snap.free[rows] >= 0).all() and (snap.free[rows] <= 1000).all()
        assert (snap.cpu_free[rows] >= 0).all() and (snap.mem_free[rows] >= 0).all()


PCLASSES = {
    f"{tier}-{rule}-{pre}": ClassPolicy(
        f"{tier}-{rule}-{pre}",
        tier,
        prio,
        PreemptionPolicy(rule, preemptible=pre, min_runtime_s=100),
    )
    for tier in ("Interactive", "Nearline", "Offline")
    for prio in (0,)
    for rule in ("never", "lower-tier", "lower-priority")
    for pre in (True, False)
}


@SETTINGS
@given(
    running=st.lists(
        st.tuples(
            st.sampled_from(sorted(PCLASSES)),
            st.integers(0, 3),
            st.integers(0, 500),
            st.integers(1, 2),
        ),
        min_size=1,
        max_size=10,
    ),
    preemptor=st.sampled_from(sorted(PCLASSES)),
    want=st.integers(1, 4),
)
def test_preemption_only_picks_allowed_victims(running, preemptor, want) -> None:  # type: ignore[no-untyped-def]
    snap = snapshot(*(make_node(f"n{i}").gpus(4) for i in range(4)))
    for i, (cls, node, age, g) in enumerate(running):
        row = snap.row(f"n{node}")
        free = [x for x in range(4) if snap.free[row, x] >= 1000][:g]
        if len(free) < g:
            continue
        pod = make_pod(f"v{i}", "team-b").gpu(g).cls(cls).priority(i % 3).obj
        snap.assume(pod, f"n{node}", tuple(free), start_time=NOW - age, tier=PCLASSES[cls].tier)
    engine = Engine("ballast", PCLASSES)
    pod = make_pod("new").gpu(want).cls(preemptor).priority(1).obj
    plan = plan_preemption(engine, snap, pod, now=NOW)
    if plan is None:
        return
    me = PCLASSES[preemptor]
    for v in plan.victims:
        vc = PCLASSES[v.class_name]
        assert vc.preemption.preemptible
        assert NOW - v.start_time >= vc.preemption.min_runtime_s
        assert me.preemption.may_preempt != "never"
        if me.preemption.may_preempt == "lower-tier":
            assert TIER_RANK[vc.tier] < TIER_RANK[me.tier]
        else:
            assert rank(vc, v.priority) < rank(me, pod.priority)
        assert v.node == plan.node
    for v in plan.victims:
        snap.forget(v.uid)
    assert engine.decide(snap, pod, now=NOW, nominated=plan.node).node == plan.node


@SETTINGS
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(("a", "b", "c")),
            st.integers(1, 4),
            st.sampled_from(("chat", "batch")),
            st.booleans(),
        ),
        max_size=40,
    ),
    limits=st.tuples(
        st.integers(0, 8),
        st.integers(0, 8),
        st.integers(0, 4),
        st.one_of(st.none(), st.integers(0, 4)),
    ),
)
def test_quota_never_admits_beyond_limits(ops, limits) -> None:  # type: ignore[no-untyped-def]
    nom_a, nom_b, borrow_a, lend_b = limits
    quotas = QuotaSet(
        [
            QuotaPolicy(
                "a",
                nom_a * 1000,
                class_limits_milli={"chat": 3000},
                cohort="c",
                borrowing_limit_milli=borrow_a * 1000,
            ),
            QuotaPolicy(
                "b",
                nom_b * 1000,
                tier_limits_milli={"Offline": 6000},
                cohort="c",
                lending_limit_milli=None if lend_b is None else lend_b * 1000,
            ),
            QuotaPolicy("c", 2000),
        ]
    )
    classes = {"chat": ClassPolicy("chat", "Interactive"), "batch": ClassPolicy("batch", "Offline")}
    snap = snapshot(make_node("big").gpus(64))
    placed: list[str] = []
    for i, (ns, g, cls, release) in enumerate(ops):
        if release and placed:
            snap.forget(placed.pop(0))
            continue
        pod = make_pod(f"p{i}", ns).gpu(g).cls(cls).obj
        q = quotas.get(ns)
        assert q is not None
        adm = admit(pod, classes[cls], snap, quotas, {})
        if not adm.admitted:
            continue
        free = [x for x in range(64) if snap.free[0, x] >= 1000][:g]
        snap.assume(
            pod, "big", tuple(free), start_time=0.0, tier=classes[cls].tier, borrowed=adm.borrowed
        )
        placed.append(pod.id)
        after = snap.tenant_usage(ns)
        if cls in q.class_limits_milli:
            assert after.by_class[cls] <= q.class_limits_milli[cls]
        tier = classes[cls].tier
        if tier in q.tier_limits_milli:
            assert after.by_tier[tier] <= q.tier_limits_milli[tier]
        if not adm.borrowed:
            assert after.total_milli <= q.nominal_milli
            continue
        assert q.cohort and after.total_milli > q.nominal_milli
        if q.borrowing_limit_milli is not None:
            assert after.total_milli - q.nominal_milli <= q.borrowing_limit_milli
        borrowed = lendable = 0
        for m in quotas.members(q.cohort):
            used = snap.tenant_usage(m.namespace).total_milli
            borrowed += max(0, used - m.nominal_milli)
            cap = m.lending_limit_milli if m.lending_limit_milli is not None else 10**9
            lendable += min(cap, max(0, m.nominal_milli - used))
        assert borrowed <= lendable


def _random_cluster(seed: int) -> tuple[Snapshot, Pod]:
    rng = np.random.default_rng(seed)
    snap = snapshot(
        *(
            make_node(f"n{i}").gpus(int(rng.choice([2, 4, 8]))).cache(("model/m", 5))
            for i in range(12)
        )
    )
    for i in range(20):
        pod = make_pod(f"x{i}").share(int(rng.integers(100, 900))).obj
        snap.mix.observe(pod)
        d = Engine("random").decide(snap, pod, now=NOW, seed=i)
        if d.node:
            snap.assume(pod, d.node, d.gpus, start_time=0.0)
    return snap, make_pod("p").share(int(rng.integers(100, 900))).models("m").obj


@SETTINGS
@given(seed=st.integers(0, 10**6), policy=st.sampled_from(sorted(PROFILES)))
def test_decisions_are_deterministic_for_a_seed(seed: int, policy: str) -> None:
    snap1, pod = _random_cluster(seed)
    snap2, _ = _random_cluster(seed)
    assert Engine(policy).decide(snap1, pod, now=NOW, seed=seed) == Engine(policy).decide(
        snap2, pod, now=NOW, seed=seed
    )


@SETTINGS
@given(
    frees=st.lists(
        st.lists(st.sampled_from((0, 50, 300, 500, 999, 1000)), min_size=1, max_size=8),
        min_size=1,
        max_size=5,
    ),
    mix_pods=st.lists(
        st.tuples(
            st.sampled_from((1, 2, 8)),
            st.sampled_from((0, 200, 500)),
            st.sampled_from(((), ("A",), ("A", "B"))),
            st.sampled_from((0, 4000)),
        ),
        min_size=1,
        max_size=12,
    ),
    pod=st.tuples(
        st.sampled_from((0, 1, 2)), st.sampled_from((100, 400)), st.sampled_from((0, 2000))
    ),
)
def test_vectorised_fragmentation_matches_the_definition(frees, mix_pods, pod) -> None:  # type: ignore[no-untyped-def]
    mix = WorkloadMix()
    for i, (k, milli, prods, cpu) in enumerate(mix_pods):
        kw = {"gpu_milli": milli} if milli else {"gpus": k}
        mix.observe(Pod("n", f"m{i}", cpu_milli=cpu, gpu_products=prods, **kw))  # type: ignore[arg-type]
    arrays = mix.arrays(("A", "B"))
    assert arrays is not None
    free = np.zeros((len(frees), 8), dtype=np.int32)
    for i, row in enumerate(frees):
        free[i, : len(row)] = row
    cpu = np.array([8000 - 3000 * (i % 3) for i in range(len(frees))], dtype=np.int64)
    mem = np.full(len(frees), 10**6, dtype=np.int64)
    prod = np.array([(i % 3) - 1 for i in range(len(frees))], dtype=np.int32)
    k, m, pcpu = pod
    ref = [
        node_frag(free[i].tolist(), int(cpu[i]), int(mem[i]), int(prod[i]), arrays)
        for i in range(len(frees))
    ]
    assert np.allclose(expected_frag(free, cpu, mem, prod, arrays), ref)
    ds = delta_share(free, cpu, mem, prod, arrays, m, pcpu, 0)
    dn = delta_node(free, cpu, mem, prod, arrays, k, pcpu, 0)
    for i in range(len(frees)):
        for g in range(8):
            if free[i, g] < m:
                assert ds[i, g] == np.inf
                continue
            after = free[i].tolist()
            after[g] -= m
            want = node_frag(after, int(cpu[i]) - pcpu, int(mem[i]), int(prod[i]), arrays) - ref[i]
            assert ds[i, g] == np.float64(want) or abs(ds[i, g] - want) < 1e-6
        whole = [g for g in range(8) if free[i, g] >= 1000][:k]
        if len(whole) == k:
            after = free[i].tolist()
            for g in whole:
                after[g] = 0
            want = node_frag(after, int(cpu[i]) - pcpu, int(mem[i]), int(prod[i]), arrays) - ref[i]
            assert abs(dn[i] - want) < 1e-6
