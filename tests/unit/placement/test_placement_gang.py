"""All-or-nothing group placement: whole or nothing, one domain preferred, group explanations."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from placement_builders import NOW, make_node, make_pod, snapshot

from ballast.api.wellknown import LABEL_ZONE
from ballast.placement.engine import Engine
from ballast.placement.gang import LABEL_NVLINK_DOMAIN, place_group
from ballast.placement.objects import MILLI, Pod
from ballast.placement.snapshot import Snapshot

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def workers(n: int, gpus: int, prefix: str = "w") -> list[Pod]:
    return [make_pod(f"{prefix}{i}").gpu(gpus).obj for i in range(n)]


def state(snap: Snapshot) -> tuple[bytes, int, int]:
    return snap.free.tobytes(), len(snap.pods), int(snap.cpu_free.sum())


def test_whole_group_or_nothing_and_snapshot_untouched() -> None:
    snap = snapshot(*(make_node(f"n{i}") for i in range(3)))
    before = state(snap)
    plan = place_group(Engine(), snap, workers(4, 8), now=NOW)
    assert not plan.complete and plan.placed == ()
    assert plan.fit == 3 and plan.total == 4
    assert plan.message().startswith("waiting: 3 of 4 members fit; 1 needs 8 GPUs on one node")
    assert state(snap) == before
    snap.add_node(make_node("n3").obj)
    plan = place_group(Engine(), snap, workers(4, 8), now=NOW)
    assert plan.complete and sorted(m.node for m in plan.placed) == ["n0", "n1", "n2", "n3"]
    for m in plan.placed:  # the placements fit together, in order
        snap.assume(m.pod, m.node, m.gpus, start_time=NOW)
    assert snap.allocated_milli() == 32 * MILLI


def test_min_member_below_total_places_at_least_need() -> None:
    snap = snapshot(*(make_node(f"n{i}") for i in range(3)))
    plan = place_group(Engine(), snap, workers(4, 8), now=NOW, need=3)
    assert plan.complete and len(plan.placed) == 3
    # A need above the group's size asks for every member.
    assert not place_group(Engine(), snap, workers(4, 8), now=NOW, need=5).complete


def test_prefers_one_nvlink_domain_then_zone() -> None:
    nodes = [make_node(f"a{i}").label(LABEL_NVLINK_DOMAIN, "A").zone("z1") for i in range(2)]
    nodes += [make_node(f"b{i}").label(LABEL_NVLINK_DOMAIN, "B").zone("z1") for i in range(4)]
    snap = snapshot(*nodes)
    plan = place_group(Engine(), snap, workers(4, 8), now=NOW)
    assert plan.complete and plan.domain == (LABEL_NVLINK_DOMAIN, "B")
    assert {m.node[0] for m in plan.placed} == {"b"}
    # Two members fit in the tighter domain A and go there.
    plan = place_group(Engine(), snap, workers(2, 8), now=NOW)
    assert plan.domain == (LABEL_NVLINK_DOMAIN, "A") and {m.node[0] for m in plan.placed} == {"a"}
    # Six do not fit in any one domain: placed across them.
    plan = place_group(Engine(), snap, workers(6, 8), now=NOW)
    assert plan.complete and plan.domain == (LABEL_ZONE, "z1")


def test_across_domains_when_no_domain_holds_the_group() -> None:
    snap = snapshot(make_node("a").zone("z1"), make_node("b").zone("z2"))
    plan = place_group(Engine(), snap, workers(2, 8), now=NOW)
    assert plan.complete and plan.domain is None


def test_admission_refusal_is_group_level() -> None:
    snap = snapshot(*(make_node(f"n{i}") for i in range(4)))
    seen: list[int] = []

    def admit(pod: Pod) -> str:
        seen.append(snap.allocated_milli())  # earlier members are counted while admitting
        return "quota team-a at 16/16 GPUs" if snap.allocated_milli() >= 16 * MILLI else ""

    plan = place_group(Engine(), snap, workers(4, 8), now=NOW, admit=admit, topology_keys=())
    assert not plan.complete and "2 not admitted: quota team-a at 16/16 GPUs" in plan.message()
    assert seen[:3] == [0, 8 * MILLI, 16 * MILLI]
    assert snap.allocated_milli() == 0


def test_shares_and_need_text() -> None:
    snap = snapshot(make_node("n0").gpus(1))
    pods = [make_pod(f"s{i}").share(600).obj for i in range(2)]
    plan = place_group(Engine(), snap, pods, now=NOW)
    assert not plan.complete and "1 needs 0.6 of a GPU" in plan.message()


# ----------------------------------------------------------------- property
node_st = st.tuples(st.sampled_from((0, 1, 2, 4, 8)), st.sampled_from(("z1", "z2", "")))
member_st = st.one_of(
    st.integers(1, 8).map(lambda g: ("gpus", g)), st.integers(1, 999).map(lambda m: ("milli", m))
)


@SETTINGS
@given(
    st.lists(node_st, min_size=1, max_size=6),
    st.lists(member_st, min_size=1, max_size=8),
    st.lists(st.tuples(st.integers(0, 5), st.integers(1, 8)), max_size=6),
    st.integers(0, 9),
)
def test_property_never_partial_never_overcommit(
    nodes: list[tuple[int, str]],
    members: list[tuple[str, int]],
    running: list[tuple[int, int]],
    need_raw: int,
) -> None:
    snap = snapshot(
        *(
            make_node(f"n{i}").gpus(g).zone(z) if z else make_node(f"n{i}").gpus(g)
            for i, (g, z) in enumerate(nodes)
        )
    )
    for j, (i, g) in enumerate(running):  # some GPUs already held
        name = f"n{i % len(nodes)}"
        free = [x for x, f in snap.free_gpus(name) if f >= MILLI][:g]
        if len(free) == g:
            snap.assume(make_pod(f"r{j}").gpu(g).obj, name, tuple(free), start_time=NOW)
    pods = [
        (make_pod(f"m{k}").gpu(v) if kind == "gpus" else make_pod(f"m{k}").share(v)).obj
        for k, (kind, v) in enumerate(members)
    ]
    need = min(need_raw, len(pods)) or len(pods)
    before = state(snap)
    plan = place_group(Engine(), snap, pods, now=NOW, need=need)
    assert state(snap) == before  # a trial never leaves anything behind
    if not plan.complete:
        assert plan.placed == ()  # never partial
        return
    assert len(plan.placed) >= need
    assert len({m.pod.id for m in plan.placed}) == len(plan.placed)
    for m in plan.placed:  # assume raises on any over-commit
        snap.assume(m.pod, m.node, m.gpus, start_time=NOW)
    assert (snap.free >= 0).all()
    assert int(np.asarray(snap.free_sum[snap.rows()]).min(initial=0)) >= 0


def test_within_requires_one_domain() -> None:
    snap = snapshot(make_node("a").zone("z1"), make_node("b").zone("z2"))
    plan = place_group(Engine(), snap, workers(2, 8), now=NOW, within=LABEL_ZONE)
    assert not plan.complete and plan.placed == ()
    assert "no single topology.kubernetes.io/zone domain holds the group" in plan.message()
    snap.add_node(make_node("c").zone("z2").obj)
    plan = place_group(Engine(), snap, workers(2, 8), now=NOW, within=LABEL_ZONE)
    assert plan.complete and plan.domain == (LABEL_ZONE, "z2")
