"""Ballast's Argo CD health checks, run in Lua 5.1 on hand-written and operator-made statuses.

Live statuses from the real API server are checked in
tests/integration/operator/test_gitops_health.py.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from argocd_lua import HEALTH_DIR, KINDS, ROOT, argocd_cm_snippet, health
from kstatus_rules import kstatus

from ballast.controller import workloadclass as wlc_logic
from ballast.controller.batchwindow import tick
from ballast.controller.gpuquota import quota_status
from ballast.kube.raw import KubeError

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)


def cond(
    type_: str, status: str, reason: str = "R", message: str = "m", gen: int = 1
) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": gen,
    }


def obj(kind: str, generation: int | None = 1, status: Any = "absent") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "x"}
    if generation is not None:
        meta["generation"] = generation
    out: dict[str, Any] = {"apiVersion": "ballast.dev/v1alpha1", "kind": kind, "metadata": meta}
    if status != "absent":
        out["status"] = status
    return out


def argo_cases() -> list[tuple[str, dict[str, Any]]]:
    cases = []
    for kind in KINDS:
        for case in yaml.safe_load((HEALTH_DIR / kind / "health_test.yaml").read_text())["tests"]:
            cases.append((kind, case))
    return cases


@pytest.mark.parametrize(
    ("kind", "case"), argo_cases(), ids=lambda v: v if isinstance(v, str) else v["inputPath"]
)
def test_shipped_argo_test_cases(kind: str, case: dict[str, Any]) -> None:
    """The health_test.yaml next to each check, in Argo CD's own format, holds."""
    data = yaml.safe_load((HEALTH_DIR / kind / case["inputPath"]).read_text())
    assert data["kind"] == kind
    assert health(kind, data) == case["healthStatus"]


def test_every_kind_ships_a_check_and_cases() -> None:
    shipped = {p.parent.name for p in HEALTH_DIR.glob("*/health.lua")}
    assert shipped == set(KINDS)
    for kind in KINDS:
        statuses = {c["healthStatus"]["status"] for k, c in argo_cases() if k == kind}
        assert statuses == {"Healthy", "Progressing", "Degraded"}, kind


EDGE_CASES: dict[str, tuple[Any, int | None, str, str]] = {
    # name: (status, generation, want status, want message pattern)
    "no status": (
        "absent",
        1,
        "Progressing",
        r"^Waiting for the Ballast operator to report status$",
    ),
    "null status": (None, 1, "Progressing", r"report status"),
    "empty status": ({}, 1, "Progressing", r"report status"),
    "conditions but no observedGeneration": (
        {"conditions": [cond("Ready", "True")]},
        1,
        "Progressing",
        r"report status",
    ),
    "no conditions": ({"observedGeneration": 1}, 1, "Progressing", r"Ready condition"),
    "empty conditions": (
        {"observedGeneration": 1, "conditions": []},
        1,
        "Progressing",
        r"Ready condition",
    ),
    "stale observedGeneration": (
        {"observedGeneration": 2, "conditions": [cond("Ready", "True", gen=2)]},
        3,
        "Progressing",
        r"observe generation 3 \(status is for generation 2\)",
    ),
    "stale Ready condition": (
        {"observedGeneration": 3, "conditions": [cond("Ready", "False", "Old", gen=2)]},
        3,
        "Progressing",
        r"Ready condition of generation 3",
    ),
    "Ready unknown": (
        {"observedGeneration": 1, "conditions": [cond("Ready", "Unknown", "Checking", "soon")]},
        1,
        "Progressing",
        r"^Checking: soon$",
    ),
    "Ready false, no kstatus conditions (older operator)": (
        {
            "observedGeneration": 1,
            "conditions": [cond("Ready", "False", "InvalidSpec", "spec.x: bad")],
        },
        1,
        "Degraded",
        r"^InvalidSpec: spec.x: bad$",
    ),
    "Ready false without message": (
        {"observedGeneration": 1, "conditions": [cond("Ready", "False", "Broken", "")]},
        1,
        "Degraded",
        r"^Broken$",
    ),
    "Reconciling true": (
        {
            "observedGeneration": 1,
            "conditions": [
                cond("Ready", "False", "Waiting", "for a window"),
                cond("Reconciling", "True", "Waiting", "for a window"),
            ],
        },
        1,
        "Progressing",
        r"^Waiting: for a window$",
    ),
    "Stalled true wins over Reconciling": (
        {
            "observedGeneration": 1,
            "conditions": [
                cond("Ready", "False", "Stuck", "help"),
                cond("Reconciling", "True", "Stuck", "x"),
                cond("Stalled", "True", "Stuck", "help"),
            ],
        },
        1,
        "Degraded",
        r"^Stuck: help$",
    ),
    "Ready true, no generation in metadata": (
        {"observedGeneration": 1, "conditions": [cond("Ready", "True", "Reconciled", "fine")]},
        None,
        "Healthy",
        r".",
    ),
    "Ready true, condition without observedGeneration": (
        {
            "observedGeneration": 4,
            "conditions": [{"type": "Ready", "status": "True", "reason": "Ok"}],
        },
        4,
        "Healthy",
        r".",
    ),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", EDGE_CASES, ids=str)
def test_edge_cases(kind: str, case: str) -> None:
    status, generation, want, pattern = EDGE_CASES[case]
    got = health(kind, obj(kind, generation, status))
    assert got["status"] == want, got
    assert re.search(pattern, got["message"]), got


def test_healthy_messages_say_something_useful() -> None:
    ready = cond("Ready", "True", "Reconciled", "all sub-conditions are True")
    wlc = {
        "observedGeneration": 1,
        "priorityClassName": "ballast-a",
        "priorityValue": 2000,
        "conditions": [ready],
    }
    assert health("WorkloadClass", obj("WorkloadClass", 1, wlc))["message"] == (
        "PriorityClass ballast-a (value 2000)"
    )
    window = {
        "observedGeneration": 1,
        "open": True,
        "currentWindowEnd": "2026-06-02T04:00:00Z",
        "conditions": [ready],
    }
    assert health("BatchWindow", obj("BatchWindow", 1, window))["message"] == (
        "Open until 2026-06-02T04:00:00Z"
    )
    quota = {"observedGeneration": 1, "conditions": [ready]}
    assert health("GPUQuota", obj("GPUQuota", 1, quota))["message"] == (
        "Reconciled: all sub-conditions are True"
    )


def test_the_scripts_use_nothing_argo_cd_lacks() -> None:
    for kind in KINDS:
        text = (HEALTH_DIR / kind / "health.lua").read_text()
        assert not re.search(r"\b(io|os|require|dofile|loadfile|package|debug)\b[.(]", text), kind
        assert text.rstrip().endswith("return hs"), kind


# Statuses as the operator's own logic writes them: Argo CD (the Lua) and
# Flux (kstatus) must read each the same way.


class _FailingKube:
    """Every PriorityClass write fails with ``status``."""

    def __init__(self, status: int) -> None:
        self.status = status

    def get(self, path: str) -> None:
        return None

    def apply(self, path: str, body: Any, **_: Any) -> Any:
        raise KubeError(self.status, "Failure", {"message": f"server says {self.status}"})


class _OkKube:
    def get(self, path: str) -> None:
        return None

    def apply(self, path: str, body: Any, **_: Any) -> Any:
        return {**body, "metadata": {**body["metadata"], "uid": "pc-1"}}


def _class_status(
    kube: Any, spec: dict[str, Any], window_exists: bool | None = None
) -> dict[str, Any]:
    outcome = wlc_logic.reconcile(
        kube,
        name="chat",
        uid="u-1",
        generation=1,
        spec=spec,
        old_status=None,
        actual_pc=None,
        window_exists=window_exists,
        now=NOW,
    )
    return outcome.status


def operator_statuses() -> dict[str, tuple[str, dict[str, Any], str, str]]:
    quotas = {
        "old": {
            "metadata": {"name": "old", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"namespaces": ["a"], "gpus": 4},
        },
        "new": {
            "metadata": {"name": "new", "creationTimestamp": "2026-02-01T00:00:00Z"},
            "spec": {"namespaces": ["a"], "gpus": 4},
        },
    }
    window = {"schedule": "0 22 * * *", "duration": "8h", "timeZone": "Europe/Berlin"}
    return {
        # name: (kind, status, Argo CD health, kstatus)
        "class ok": (
            "WorkloadClass",
            _class_status(_OkKube(), {"tier": "Interactive"}),
            "Healthy",
            "Current",
        ),
        "class invalid spec": (
            "WorkloadClass",
            _class_status(_OkKube(), {"tier": "Sometimes"}),
            "Degraded",
            "Failed",
        ),
        "class window missing": (
            "WorkloadClass",
            _class_status(_OkKube(), {"tier": "Offline", "window": "nightly"}, window_exists=False),
            "Progressing",
            "InProgress",
        ),
        "class server error": (
            "WorkloadClass",
            _class_status(_FailingKube(503), {"tier": "Interactive"}),
            "Progressing",
            "InProgress",
        ),
        "class rejected by admission": (
            "WorkloadClass",
            _class_status(_FailingKube(403), {"tier": "Interactive"}),
            "Degraded",
            "Failed",
        ),
        "quota ok": (
            "GPUQuota",
            quota_status("old", quotas["old"]["spec"], None, 1, quotas, NOW)[0],
            "Healthy",
            "Current",
        ),
        "quota conflict": (
            "GPUQuota",
            quota_status("new", quotas["new"]["spec"], None, 1, quotas, NOW)[0],
            "Degraded",
            "Failed",
        ),
        "window ok": ("BatchWindow", tick(window, None, 1, NOW).status, "Healthy", "Current"),
        "window invalid": (
            "BatchWindow",
            tick({**window, "schedule": "0 0 30 2 *"}, None, 1, NOW).status,
            "Degraded",
            "Failed",
        ),
    }


@pytest.mark.parametrize("case", operator_statuses(), ids=str)
def test_argo_and_kstatus_agree_on_what_the_operator_writes(case: str) -> None:
    kind, status, want_health, want_kstatus = operator_statuses()[case]
    o = obj(kind, 1, status)
    got = health(kind, o)
    assert got["status"] == want_health, got
    assert kstatus(o) == want_kstatus
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    if want_health != "Healthy":
        # Not healthy: the message is the operator's own reason and message.
        assert got["message"] == f"{ready['reason']}: {ready['message']}"
    kstatus_types = {c["type"] for c in status["conditions"]} & {"Reconciling", "Stalled"}
    assert kstatus_types == {"Reconciling", "Stalled"}


def test_a_new_generation_is_in_progress_for_both() -> None:
    status = tick(
        {"schedule": "0 22 * * *", "duration": "8h", "timeZone": "UTC"}, None, 1, NOW
    ).status
    o = obj("BatchWindow", 2, status)
    assert health("BatchWindow", o)["status"] == "Progressing"
    assert kstatus(o) == "InProgress"


def test_docs_show_the_shipped_checks() -> None:
    """docs/gitops.md's argocd-cm block is rendered from the files (no drift)."""
    text = (ROOT / "docs" / "gitops.md").read_text()
    blocks = re.findall(
        r"<!-- argocd-cm:begin -->\n```yaml\n(.*?)```\n<!-- argocd-cm:end -->", text, re.S
    )
    want = argocd_cm_snippet()
    assert blocks == [want], (
        "docs/gitops.md's argocd-cm block differs from the files; paste:\n" + want
    )
    parsed = yaml.safe_load(want)
    for kind in KINDS:
        assert (
            parsed["data"][f"resource.customizations.health.ballast.dev_{kind}"]
            == (HEALTH_DIR / kind / "health.lua").read_text()
        )
    assert Path(HEALTH_DIR).is_dir()
