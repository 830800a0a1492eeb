"""Table tests for admission: batch windows, class/tier limits, nominal quota, cohort borrowing."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from placement_builders import make_node, make_pod, snapshot

from ballast.placement.admission import QuotaSet, admit
from ballast.placement.objects import ClassPolicy, QuotaPolicy, WindowState, gpus

BATCH = ClassPolicy("batch", "Offline", window="nightly")
TRAIN = ClassPolicy("train", "Offline")
CHAT = ClassPolicy("chat", "Interactive")


@dataclass
class Case:
    name: str
    pod_gpus: int
    cls: ClassPolicy
    quotas: list[QuotaPolicy]
    usage: dict[str, int] = field(default_factory=dict)  # namespace -> whole GPUs in use
    windows: dict[str, bool] = field(default_factory=dict)
    want_admitted: bool = True
    want_borrowed: bool = False
    want_reason: str = ""


A = "team-a"
CASES = [
    Case("no quota: admitted", 4, TRAIN, []),
    Case("within nominal", 4, TRAIN, [QuotaPolicy(A, gpus(8))], {A: 4}),
    Case(
        "at nominal, no cohort: held with usage in the reason",
        1,
        TRAIN,
        [QuotaPolicy(A, gpus(16))],
        {A: 16},
        want_admitted=False,
        want_reason="quota team-a at 16/16 GPUs",
    ),
    Case(
        "class limit is a hard cap",
        2,
        CHAT,
        [QuotaPolicy(A, gpus(16), class_limits_milli={"chat": gpus(2)})],
        {A: 1},
        want_admitted=False,
        want_reason="quota team-a: class chat at 1/2 GPUs",
    ),
    Case(
        "tier limit is a hard cap",
        2,
        TRAIN,
        [QuotaPolicy(A, gpus(16), tier_limits_milli={"Offline": gpus(2)})],
        {A: 1},
        want_admitted=False,
        want_reason="quota team-a: tier Offline at 1/2 GPUs",
    ),
    Case(
        "borrow from an idle cohort member",
        4,
        TRAIN,
        [QuotaPolicy(A, gpus(8), cohort="c"), QuotaPolicy("team-b", gpus(8), cohort="c")],
        {A: 8},
        want_borrowed=True,
    ),
    Case(
        "borrowing limit",
        4,
        TRAIN,
        [
            QuotaPolicy(A, gpus(8), cohort="c", borrowing_limit_milli=gpus(2)),
            QuotaPolicy("team-b", gpus(8), cohort="c"),
        ],
        {A: 8},
        want_admitted=False,
        want_reason="quota team-a at 8/8 GPUs, borrowing limit 2 reached",
    ),
    Case(
        "lending limit of the lender",
        4,
        TRAIN,
        [
            QuotaPolicy(A, gpus(8), cohort="c"),
            QuotaPolicy("team-b", gpus(8), cohort="c", lending_limit_milli=gpus(3)),
        ],
        {A: 8},
        want_admitted=False,
        want_reason="quota team-a at 8/8 GPUs, cohort c has 3 to lend",
    ),
    Case(
        "lender busy: nothing to lend",
        1,
        TRAIN,
        [QuotaPolicy(A, gpus(8), cohort="c"), QuotaPolicy("team-b", gpus(8), cohort="c")],
        {A: 8, "team-b": 8},
        want_admitted=False,
        want_reason="cohort c has 0 to lend",
    ),
    Case(
        "other borrowers use up the lendable pool",
        2,
        TRAIN,
        [
            QuotaPolicy(A, gpus(4), cohort="c"),
            QuotaPolicy("team-b", gpus(4), cohort="c"),
            QuotaPolicy("team-c", gpus(4), cohort="c"),
        ],
        {A: 4, "team-b": 7},
        want_admitted=False,
        want_reason="cohort c has 1 to lend",
    ),
    Case("window open", 1, BATCH, [], windows={"nightly": True}),
    Case(
        "window closed: held and says so",
        1,
        BATCH,
        [],
        windows={"nightly": False},
        want_admitted=False,
        want_reason="waiting for batch window nightly (closed)",
    ),
    Case(
        "window unknown: held",
        1,
        BATCH,
        [],
        want_admitted=False,
        want_reason="waiting for batch window nightly (unknown)",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_admission(case: Case) -> None:
    snap = snapshot(make_node("big").gpus(64))
    g = 0
    for ns, n in case.usage.items():
        pod = make_pod(f"used-{ns}", ns).gpu(n).cls(case.cls.name).obj
        snap.assume(pod, "big", tuple(range(g, g + n)), start_time=0.0, tier=case.cls.tier)
        g += n
    windows = {k: WindowState(k, v) for k, v in case.windows.items()}
    pod = make_pod("p").gpu(case.pod_gpus).cls(case.cls.name).obj
    got = admit(pod, case.cls, snap, QuotaSet(case.quotas), windows)
    assert got.admitted == case.want_admitted
    assert got.borrowed == case.want_borrowed
    assert case.want_reason in got.reason
    if case.want_admitted:
        assert got.reason == ""


def test_cpu_only_pods_use_no_gpu_quota() -> None:
    snap = snapshot(make_node("n"))
    quotas = QuotaSet([QuotaPolicy(A, 0)])
    assert admit(make_pod("p").cpu(100).obj, TRAIN, snap, quotas, {}).admitted


def test_duplicate_quota_and_negative_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="two quotas"):
        QuotaSet([QuotaPolicy(A, 1), QuotaPolicy(A, 2)])
    with pytest.raises(ValueError, match=">= 0"):
        QuotaPolicy(A, -1)
