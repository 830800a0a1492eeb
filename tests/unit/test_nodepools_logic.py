"""Node pools (controller/nodepools.py): choice, hysteresis, conflicts, node patches, status."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ballast.controller import nodepool_views as views
from ballast.controller import nodepool_writes as writes
from ballast.controller import nodepools as np
from ballast.controller.nodepool_views import ClassView, Membership, NodeView, PodView, PoolSpec

T0 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
DWELL = dt.timedelta(seconds=300)
H100 = "NVIDIA-H100-80GB-HBM3"
L4 = "NVIDIA-L4"


def node(name: str, product: str = H100, gpus: int = 8, mem: int = 81559, **kw: Any) -> NodeView:
    return NodeView(name=name, product=product, gpus=gpus, gpu_memory_mib=mem, **kw)


def member(name: str, pool: str, since: dt.datetime = T0, phase: str = "Joined", **kw: Any) -> NodeView:  # fmt: skip
    return node(name, pool_label=pool, pool_taints=(pool,), member_of=pool, since=since,
                phase=phase, borrowable=kw.pop("borrowable", phase == "Joined"), **kw)  # fmt: skip


def cls(name: str, pool: str | None = "serving", created: str = "2026-01-01T00:00:00Z", **p: Any) -> ClassView:  # fmt: skip
    spec = PoolSpec(name=pool, **{"gpu_products": (H100,), **p}) if pool else None
    return ClassView(name=name, uid=f"uid-{name}", created=created, generation=1, pool=spec)


def run(classes: list[ClassView], nodes: list[NodeView], pods: list[PodView] = (),  # type: ignore[assignment]
        now: dt.datetime = T0) -> np.Plan:  # fmt: skip
    return np.plan(classes, nodes, pods, now=now, dwell=DWELL)


def wants(p: np.Plan) -> dict[str, str | None]:
    return {c.node: (c.want.pool + "/" + c.want.phase if c.want else None) for c in p.changes}


def apply(nodes: list[NodeView], p: np.Plan) -> list[NodeView]:
    """The nodes as they are after the plan's writes (what node_view would read back)."""
    by = {n.name: n for n in nodes}
    for c in p.changes:
        assert by[c.node].member_of == c.expected
        by[c.node] = np.applied(by[c.node], c.want)
    return sorted(by.values(), key=lambda n: n.name)


# ------------------------------------------------------------------ choice


def test_reserved_nodes_are_chosen_by_name_among_matching_ready_free_nodes() -> None:
    nodes = [node("c"), node("b"), node("a", product=L4), node("d", ready=False),
             node("e", unschedulable=True), node("f", mem=40000)]  # fmt: skip
    p = run([cls("chat", reserved_nodes=2)], nodes)
    assert wants(p) == {"b": "serving/Joined", "c": "serving/Joined"}
    st_ = p.status["chat"]
    assert st_.pool is not None and st_.pool["members"] == ["b", "c"]
    assert st_.pool["reservedGPUs"] == 16 and st_.pool["wantedNodes"] == 2
    assert st_.condition is not None and st_.condition.status is True
    assert st_.condition.reason == "Filled"


def test_min_gpu_memory_and_reserved_gpus_choose_enough_nodes() -> None:
    nodes = [node("a", gpus=4), node("b", gpus=4), node("c", gpus=4), node("d", mem=40000)]
    p = run([cls("chat", min_gpu_memory_mib=80000, reserved_gpus=6)], nodes)
    assert wants(p) == {"a": "serving/Joined", "b": "serving/Joined"}
    assert p.status["chat"].pool is not None and p.status["chat"].pool["wantedNodes"] == 2


def test_preference_members_then_own_pods_then_name() -> None:
    nodes = [node("a"), node("b"), member("z", "serving"), node("y")]
    pods = [PodView("y", cls="chat", gpus=1)]
    p = run([cls("chat", reserved_nodes=3)], nodes, pods)
    assert wants(p) == {"y": "serving/Joined", "a": "serving/Joined"}  # z is kept as it is
    assert p.status["chat"].pool is not None
    assert p.status["chat"].pool["members"] == ["a", "y", "z"]


def test_a_node_with_another_class_running_is_pending_then_joins_when_they_are_gone() -> None:
    nodes = [node("a")]
    foreign = [PodView("a", cls="batch", gpus=2), PodView("a", cls="", daemon=True)]
    p = run([cls("chat", reserved_nodes=1)], nodes, foreign)
    assert wants(p) == {"a": "serving/Pending"}
    (c,) = p.changes
    assert c.want is not None and c.want.borrowable is False and c.reason == "PoolNodeAdded"
    cond = p.status["chat"].condition
    assert cond is not None and (cond.status, cond.reason) == (False, "PendingJoin")
    assert p.status["chat"].pool is not None and p.status["chat"].pool["pendingNodes"] == ["a"]
    nodes = apply(nodes, p)
    assert run([cls("chat", reserved_nodes=1)], nodes, foreign).changes == []  # still waiting
    p = run([cls("chat", reserved_nodes=1)], nodes, foreign[1:], now=T0 + dt.timedelta(1))
    assert wants(p) == {"a": "serving/Joined"} and p.changes[0].reason == "PoolNodeJoined"
    assert p.changes[0].want is not None and p.changes[0].want.since == T0  # dwell counts on


def test_pods_that_tolerate_the_pool_or_belong_to_a_sharing_class_do_not_block() -> None:
    pods = [PodView("a", cls="x", tolerated=frozenset({"serving"})),
            PodView("a", cls="y", tolerates_all=True), PodView("a", cls="canary")]  # fmt: skip
    p = run([cls("chat", reserved_nodes=1), cls("canary", created="2026-02-01T00:00:00Z")],
            [node("a")], pods)  # fmt: skip
    assert wants(p) == {"a": "serving/Joined"}
    assert p.status["chat"].pool is not None and p.status["chat"].pool["borrowedGPUs"] == 0


def test_a_free_node_replaces_a_pending_member_but_never_a_joined_one() -> None:
    nodes = [member("a", "serving", phase="Pending"), node("b")]
    foreign = [PodView("a", cls="batch")]
    p = run([cls("chat", reserved_nodes=1)], nodes, foreign)
    assert wants(p) == {"a": None, "b": "serving/Joined"}
    nodes = [member("a", "serving"), node("b")]  # joined: its pods now are borrowers
    assert run([cls("chat", reserved_nodes=1)], nodes, foreign).changes == []


def test_nodes_of_other_pools_or_labelled_by_hand_are_never_taken() -> None:
    nodes = [member("a", "training"), node("b", pool_label="manual"), node("c", pool_taints=("x",))]
    classes = [cls("train", pool="training", reserved_nodes=1, created="2026-03-01T00:00:00Z"),
               cls("chat", reserved_nodes=2)]  # fmt: skip
    p = run(classes, nodes)
    assert p.changes == []
    cond = p.status["chat"].condition
    assert cond is not None and (cond.status, cond.reason) == (False, "PoolConflict")
    assert "a held by pool training (train)" in cond.message
    assert "b held by pool manual (labelled by hand)" in cond.message
    assert p.status["chat"].pool is not None and p.status["chat"].pool["wantedNodes"] == 2


def test_a_pool_that_cannot_be_filled_says_how_many_it_has_and_wants() -> None:
    p = run([cls("chat", reserved_nodes=3)], [node("a"), node("b", product=L4)])
    assert wants(p) == {"a": "serving/Joined"}
    cond = p.status["chat"].condition
    assert cond is not None and (cond.status, cond.reason) == (False, "NotEnoughNodes")
    assert "has 1 of 3 node(s)" in cond.message


def test_conflict_the_older_class_gets_a_contested_free_node() -> None:
    classes = [cls("young", pool="b-pool", reserved_nodes=1, created="2026-05-01T00:00:00Z"),
               cls("old", pool="z-pool", reserved_nodes=1, created="2026-01-01T00:00:00Z")]  # fmt: skip
    p = run(classes, [node("a")])
    assert wants(p) == {"a": "z-pool/Joined"}
    young = p.status["young"].condition
    assert young is not None and young.reason == "PoolConflict" and "(old)" in young.message
    # Same age: by name.
    classes = [dataclasses.replace(c, created="2026-01-01T00:00:00Z") for c in classes]
    assert wants(run(classes, [node("a")])) == {"a": "z-pool/Joined"}  # "old" < "young"


def test_a_member_stays_with_its_pool_even_when_an_older_class_wants_it() -> None:
    classes = [cls("young", pool="y", reserved_nodes=1, created="2026-05-01T00:00:00Z"),
               cls("old", pool="o", reserved_nodes=1, created="2026-01-01T00:00:00Z")]  # fmt: skip
    p = run(classes, [member("a", "y")])
    assert p.changes == []
    cond = p.status["old"].condition
    assert cond is not None and cond.reason == "PoolConflict"


def test_a_second_class_naming_the_pool_shares_it_and_cannot_reserve_in_it() -> None:
    classes = [cls("chat", reserved_nodes=1),
               cls("canary", created="2026-06-01T00:00:00Z"),
               cls("greedy", created="2026-07-01T00:00:00Z", reserved_nodes=5)]  # fmt: skip
    p = run(classes, [node("a"), node("b")])
    assert wants(p) == {"a": "serving/Joined"}
    canary = p.status["canary"]
    assert canary.pool is not None and canary.pool["definedBy"] == "chat"
    assert canary.condition is not None and canary.condition.reason == "Filled"
    greedy = p.status["greedy"].condition
    assert greedy is not None and greedy.reason == "PoolConflict" and "chat" in greedy.message


def test_a_pool_without_reservation_touches_no_node() -> None:
    p = run([cls("chat")], [node("a"), node("b", pool_label="serving")])
    assert p.changes == []
    cond = p.status["chat"].condition
    assert cond is not None and (cond.status, cond.reason) == (True, "NotReserved")
    p = run([cls("chat")], [node("a")])
    cond = p.status["chat"].condition
    assert cond is not None and (cond.status, cond.reason) == (False, "NoNodes")


# ------------------------------------------------------------------ hysteresis and release


def test_a_surplus_member_stays_for_the_dwell_time() -> None:
    nodes = [member("a", "serving", since=T0), member("b", "serving", since=T0)]
    classes = [cls("chat", reserved_nodes=1)]
    p = run(classes, nodes, now=T0 + dt.timedelta(seconds=100))
    assert p.changes == [] and p.next_review == T0 + DWELL
    assert p.status["chat"].pool is not None and p.status["chat"].pool["members"] == ["a", "b"]
    p = run(classes, nodes, now=T0 + DWELL)
    assert wants(p) == {"b": None}  # the later name goes; "a" stays


def test_deleting_the_class_or_its_pool_returns_the_nodes_at_once() -> None:
    nodes = [member("a", "serving"), node("b", pool_label="serving")]
    for classes in ([], [cls("chat", pool=None)]):
        p = run(classes, nodes, now=T0 + dt.timedelta(seconds=1))
        assert wants(p) == {"a": None}  # the hand-labelled "b" is not Ballast's
    p = run([cls("chat", pool=None)], nodes)
    assert p.status["chat"] == writes.ClassPool(None, None)


def test_a_member_that_no_longer_matches_leaves() -> None:
    p = run(
        [cls("chat", reserved_nodes=1)], [dataclasses.replace(member("a", "serving"), product=L4)]
    )
    assert wants(p)["a"] is None


def test_drift_on_a_member_is_restored() -> None:
    drifted = [
        dataclasses.replace(member("a", "serving"), pool_label=None),
        dataclasses.replace(member("a", "serving"), pool_taints=()),
        dataclasses.replace(member("a", "serving"), pool_label="other"),
    ]
    for n in drifted:
        p = run([cls("chat", reserved_nodes=1)], [n])
        assert wants(p) == {"a": "serving/Joined"} and p.changes[0].reason == "PoolNodeRestored"


def test_an_invalid_class_freezes_its_pool() -> None:
    bad = ClassView(name="chat", invalid=True, invalid_pool_name="serving")
    p = run([bad], [member("a", "serving")])
    assert p.changes == [] and "chat" not in p.status


# ------------------------------------------------------------------ parsing and patches


def test_node_view_and_pod_view_parse_the_wire_objects() -> None:
    body = {
        "metadata": {
            "name": "n1",
            "labels": {"nvidia.com/gpu.product": H100, "nvidia.com/gpu.memory": "81559",
                       "ballast.dev/pool": "serving"},
            "annotations": {views.ANNOTATION_MEMBER: "serving", views.ANNOTATION_SINCE: "2026-11-23T10:00:00Z",
                            views.ANNOTATION_PHASE: "Joined", views.ANNOTATION_BORROWABLE: "true"},
        },
        "spec": {"taints": [{"key": "ballast.dev/pool", "value": "serving", "effect": "NoSchedule"},
                            {"key": "x", "effect": "NoSchedule"}]},
        "status": {"allocatable": {"nvidia.com/gpu": "8"},
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }  # fmt: skip
    assert views.node_view(body) == member("n1", "serving")
    assert (
        views.node_view({"metadata": {"name": "x", "labels": {"nvidia.com/gpu.count": "zz"}}}).gpus
        == 0
    )
    pod = {
        "metadata": {"labels": {"ballast.dev/class": "batch"}},
        "spec": {"nodeName": "n1", "containers": [{"resources": {"limits": {"nvidia.com/gpu": "2"}}}],
                 "tolerations": [{"key": "ballast.dev/pool", "value": "serving", "effect": "NoSchedule"}]},
        "status": {"phase": "Running"},
    }  # fmt: skip
    v = views.pod_view(pod)
    assert v == PodView("n1", cls="batch", gpus=2, tolerated=frozenset({"serving"}))
    assert v.tolerates("serving") and not v.tolerates("other")
    assert views.pod_view({**pod, "status": {"phase": "Succeeded"}}) is None
    assert views.pod_view({"spec": {}}) is None


def test_node_patch_keeps_other_taints_and_carries_the_resource_version() -> None:
    body = {"metadata": {"name": "n", "resourceVersion": "7", "labels": {"a": "b"}, "annotations": {}},
            "spec": {"taints": [{"key": "ballast.dev/test", "value": "t", "effect": "NoSchedule"}]}}  # fmt: skip
    want = Membership("serving", T0, "Joined", True)
    patch = writes.node_patch(body, want)
    assert patch == {
        "metadata": {
            "resourceVersion": "7",
            "labels": {"ballast.dev/pool": "serving"},
            "annotations": {views.ANNOTATION_MEMBER: "serving", views.ANNOTATION_SINCE: "2026-11-23T10:00:00Z",
                            views.ANNOTATION_PHASE: "Joined", views.ANNOTATION_BORROWABLE: "true"},
        },
        "spec": {"taints": [{"key": "ballast.dev/test", "value": "t", "effect": "NoSchedule"},
                            {"key": "ballast.dev/pool", "value": "serving", "effect": "NoSchedule"}]},
    }  # fmt: skip
    after = {"metadata": {**body["metadata"], "labels": {"a": "b", "ballast.dev/pool": "serving"},
                          "annotations": {k: v for k, v in patch["metadata"]["annotations"].items()}},
             "spec": patch["spec"]}  # fmt: skip
    assert writes.node_patch(after, want) is None  # idempotent
    release = writes.node_patch(after, None)
    assert release is not None
    assert release["metadata"]["labels"] == {"ballast.dev/pool": None}
    assert set(release["metadata"]["annotations"].values()) == {None}
    assert release["spec"]["taints"] == body["spec"]["taints"]
    assert writes.node_patch(body, None) is None  # not Ballast's: never touched


def test_status_differs_only_when_something_changed() -> None:
    p = run([cls("chat", reserved_nodes=1)], [node("a")])
    want = p.status["chat"]
    assert want.condition is not None
    c = dataclasses.replace(cls("chat", reserved_nodes=1), status_pool=want.pool)
    assert writes.status_differs(c, want)  # no PoolReady yet
    conds = writes.pool_conditions([], want.condition, generation=1, now=T0)
    c = dataclasses.replace(c, conditions=tuple(conds))
    assert not writes.status_differs(c, want)
    assert writes.pool_conditions(conds, None, generation=1, now=T0) == []


# ------------------------------------------------------------------ properties

NAMES = [f"n{i}" for i in range(6)]
POOLS = ["p1", "p2", "p3"]


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[ClassView], list[NodeView], list[PodView], dt.datetime]:
    classes = []
    for k, pool in enumerate(draw(st.lists(st.sampled_from(POOLS), max_size=3, unique=True))):
        classes.append(ClassView(
            name=f"c{k}", uid=f"u{k}", created=f"2026-0{draw(st.integers(1, 3))}-01T00:00:00Z",
            pool=PoolSpec(pool, gpu_products=tuple(draw(st.sets(st.sampled_from([H100, L4]), max_size=2))),
                          reserved_nodes=draw(st.integers(0, 3)), reserved_gpus=draw(st.integers(0, 20)),
                          allow_borrowing=draw(st.booleans())),
        ))  # fmt: skip
    nodes = []
    for name in NAMES:
        kind = draw(st.sampled_from(["free", "member", "hand"]))
        base = node(name, product=draw(st.sampled_from([H100, L4])), gpus=draw(st.integers(1, 8)),
                    ready=draw(st.booleans()))  # fmt: skip
        if kind == "member":
            base = member(name, draw(st.sampled_from(POOLS)), since=T0 - dt.timedelta(seconds=draw(st.integers(0, 600))),
                          phase=draw(st.sampled_from(["Pending", "Joined"])), product=base.product)  # fmt: skip
        elif kind == "hand":
            base = dataclasses.replace(base, pool_label=draw(st.sampled_from(POOLS)))
        nodes.append(base)
    pods = [
        PodView(draw(st.sampled_from(NAMES)), cls=draw(st.sampled_from(["c0", "c1", "c2", "other", ""])),
                gpus=draw(st.integers(0, 2)), daemon=draw(st.booleans()))
        for _ in range(draw(st.integers(0, 6)))
    ]  # fmt: skip
    return classes, nodes, pods, T0 + dt.timedelta(seconds=draw(st.integers(0, 900)))


def _blocked(pool: str, classes: list[ClassView], pods: list[PodView], n: str) -> bool:
    sharers = {c.name for c in classes if c.pool and c.pool.name == pool}
    return any(p.node == n and not p.daemon and p.cls not in sharers and not p.tolerates(pool)
               for p in pods)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(worlds(), st.randoms(use_true_random=False))
def test_plan_is_deterministic_whatever_the_order(w: Any, rnd: random.Random) -> None:
    classes, nodes, pods, now = w
    a = run(classes, nodes, pods, now=now)
    rnd.shuffle(classes)
    rnd.shuffle(nodes)
    rnd.shuffle(pods)
    b = run(classes, nodes, pods, now=now)
    assert sorted(a.changes, key=lambda c: c.node) == sorted(b.changes, key=lambda c: c.node)
    assert a.status == b.status and a.next_review == b.next_review


@settings(max_examples=150, deadline=None)
@given(worlds())
def test_plan_is_stable_once_applied(w: Any) -> None:
    classes, nodes, pods, now = w
    after = apply(nodes, run(classes, nodes, pods, now=now))
    again = run(classes, after, pods, now=now)
    assert again.changes == []
    # ... and later, nothing moves before a dwell ends.
    later = run(classes, after, pods, now=now + dt.timedelta(seconds=1))
    assert all(c.want is None for c in later.changes) or later.changes == []
    for c in later.changes:
        n = next(x for x in after if x.name == c.node)
        assert n.since is not None and n.since + DWELL <= now + dt.timedelta(seconds=1)


@settings(max_examples=200, deadline=None)
@given(worlds())
def test_never_steals(w: Any) -> None:
    classes, nodes, pods, now = w
    p = run(classes, nodes, pods, now=now)
    by = {n.name: n for n in nodes}
    for c in p.changes:
        n = by[c.node]
        if c.want is None:
            assert n.member_of is not None  # only Ballast's own nodes are given back
            if n.phase == "Joined" and n.since is not None and n.since + DWELL > now:
                owner = next((x for x in classes if x.pool and x.pool.name == n.member_of), None)
                # Within the dwell only a vanished pool or a node that no longer matches leaves.
                assert owner is None or not owner.pool or not owner.pool.reserves or \
                    not owner.pool.matches(n)  # fmt: skip
            continue
        # Never another pool's node (unless that pool gives it back by itself: without the
        # classes of the pool that takes it, it would be released too), never a node
        # labelled or tainted by hand.
        if n.member_of not in (None, c.want.pool):
            rest = [x for x in classes if not x.pool or x.pool.name != c.want.pool]
            alone = {x.node: x.want for x in run(rest, nodes, pods, now=now).changes}
            assert n.name in alone and (alone[n.name] is None or alone[n.name].pool != n.member_of)
        if n.member_of is None:
            assert n.pool_label is None and not n.pool_taints
        # Never joined while another class's pods still run there (unless it had joined).
        if c.want.phase == "Joined" and n.phase != "Joined":
            assert not _blocked(c.want.pool, classes, pods, n.name)
