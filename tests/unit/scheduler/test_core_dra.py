"""The scheduler core with ResourceClaims: allocation, holds, waiting reasons, bad input."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sched_builders import make, node, pod, run

from ballast.localcluster.dradriver import device_classes, gpu_devices
from ballast.placement.objects import MILLI
from ballast.scheduler import core
from ballast.scheduler.dra_writes import ClaimWrite
from ballast.scheduler.informer import Event

H100 = "NVIDIA H100 80GB HBM3"


def rslice(node_name: str, gpus: int = 4, mig: bool = False) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{node_name}-gpu.nvidia.com"},
        "spec": {"driver": "gpu.nvidia.com", "nodeName": node_name, "pool": {"name": node_name},
                 "devices": gpu_devices(node_name, gpus, H100, 81559, mig)},
    }  # fmt: skip


def claim(name: str, count: int = 1, expr: str = "", cls: str = "gpu.nvidia.com",
          **status: Any) -> dict[str, Any]:  # fmt: skip
    sels = [{"cel": {"expression": expr}}] if expr else []
    return {
        "metadata": {"namespace": "team", "name": name, "uid": f"cu-{name}",
                     "resourceVersion": "1"},
        "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {
            "deviceClassName": cls, "count": count, "selectors": sels}}]}},
        "status": status,
    }  # fmt: skip


def claim_pod(name: str, claim_name: str) -> dict[str, Any]:
    p = pod(name, gpus=0)
    p["spec"]["containers"][0]["resources"] = {"claims": [{"name": "gpu"}]}
    p["spec"]["resourceClaims"] = [{"name": "gpu", "resourceClaimName": claim_name}]
    return p


@pytest.fixture
def binds(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, list[ClaimWrite]]]:
    out: list[tuple[str, str, list[ClaimWrite]]] = []

    def record(actions: Any, p: Any, node_name: str, ann: Any, claims: Any) -> None:
        out.append((p["metadata"]["name"], node_name, list(claims)))

    monkeypatch.setattr(core, "bind_with_claims", record)
    return out


def start(*objects: tuple[str, dict[str, Any]]) -> Any:
    classes = [("deviceclasses", dc) for dc in device_classes()]
    s, actions, q = make(*classes, *objects)
    for kind in ("resourceslices", "deviceclasses", "resourceclaims"):
        s.required.add(kind)
        q.put(Event(kind, "SYNCED", {}))
    actions.now = lambda: dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
    return s, actions, q


def test_a_claim_gets_devices_on_a_dra_only_node_and_the_pod_is_bound(binds: list) -> None:
    s, actions, _ = start(
        ("nodes", node("plain", gpus=8)), ("nodes", node("dra", gpus=0)),
        ("resourceslices", rslice("dra", 4)), ("resourceclaims", claim("c1", count=2)),
        ("pods", claim_pod("p1", "c1")),
    )  # fmt: skip
    run(s)
    assert [(b[0], b[1]) for b in binds] == [("p1", "dra")]
    (write,) = binds[0][2]
    results = write.allocation["devices"]["results"]  # type: ignore[index]
    assert len(results) == 2 and {r["pool"] for r in results} == {"dra"}
    sel = write.allocation["nodeSelector"]["nodeSelectorTerms"][0]["matchFields"][0]  # type: ignore[index]
    assert sel["values"] == ["dra"]
    r = s.snapshot.row("dra")
    assert int(s.snapshot.free[r, :4].sum()) == 2 * MILLI  # held by the claim, not the pod
    assert actions.binds == []  # the plain pod bind is not used for claims


def test_an_allocated_elsewhere_claim_is_charged_on_its_devices() -> None:
    allocated = {"allocation": {"devices": {"results": [
        {"request": "gpu", "driver": "gpu.nvidia.com", "pool": "dra", "device": "gpu-1"}]},
        "nodeSelector": {"nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": ["dra"]}]}]}}}  # fmt: skip
    s, _, q = start(("nodes", node("dra", gpus=0)), ("resourceslices", rslice("dra", 4)),
                    ("resourceclaims", claim("c9", **allocated)))  # fmt: skip
    run(s)
    r = s.snapshot.row("dra")
    assert s.snapshot.free[r, 1] == 0 and int(s.snapshot.free[r, :4].sum()) == 3 * MILLI
    q.put(Event("resourceclaims", "DELETED", claim("c9", **allocated)))
    run(s, 1)
    assert int(s.snapshot.free[r, :4].sum()) == 4 * MILLI


def test_unsatisfiable_claims_wait_with_the_reason(binds: list) -> None:
    s, actions, _ = start(("nodes", node("dra", gpus=0)), ("resourceslices", rslice("dra", 2)),
                          ("resourceclaims", claim("c1", count=4)),
                          ("pods", claim_pod("p1", "c1")))  # fmt: skip
    run(s)
    assert binds == []
    reason, message = actions.conditions["p1"]
    assert reason == "Unschedulable" and "2 device(s) match, 2 free, 4 needed" in message


def test_a_selector_that_does_not_compile_is_an_event_naming_it(binds: list) -> None:
    s, actions, _ = start(("nodes", node("dra", gpus=0)), ("resourceslices", rslice("dra", 2)),
                          ("resourceclaims", claim("c1", expr="device.attributes[")),
                          ("pods", claim_pod("p1", "c1")))  # fmt: skip
    run(s)
    assert binds == []
    notes = [n for n in actions.notes if n[1] == "InvalidDeviceSelector"]
    assert notes and "device.attributes[" in notes[0][2] and "c1" in notes[0][2]
    assert actions.conditions["p1"][0] == "InvalidDeviceSelector"


def test_a_garbage_slice_is_ignored_with_a_warning(binds: list) -> None:
    bad = rslice("dra", 2)
    bad["spec"]["devices"][0]["capacity"]["memory"] = {"value": "lots"}
    s, actions, _ = start(("nodes", node("dra", gpus=0)), ("resourceslices", bad),
                          ("resourceclaims", claim("c1")), ("pods", claim_pod("p1", "c1")))  # fmt: skip
    run(s)
    assert ("dra-gpu.nvidia.com", "InvalidResourceSlice") in actions.events
    assert binds == [] and s.snapshot.gpu_count[s.snapshot.row("dra")] == 0
    assert actions.conditions["p1"][0] == "Unschedulable"


def test_a_claim_from_a_template_waits_until_the_controller_made_it(binds: list) -> None:
    p = claim_pod("p1", "")
    p["spec"]["resourceClaims"] = [{"name": "gpu", "resourceClaimTemplateName": "one-gpu"}]
    s, actions, q = start(("nodes", node("dra", gpus=0)), ("resourceslices", rslice("dra", 2)),
                          ("pods", p))  # fmt: skip
    run(s)
    assert actions.conditions["p1"][0] == "WaitingForResourceClaim"
    q.put(Event("resourceclaims", "ADDED", claim("p1-gpu-abcde")))
    p2 = {**p, "status": {"phase": "Pending", "resourceClaimStatuses": [
        {"name": "gpu", "resourceClaimName": "p1-gpu-abcde"}]}}  # fmt: skip
    q.put(Event("pods", "MODIFIED", p2))
    run(s)
    assert [(b[0], b[1]) for b in binds] == [("p1", "dra")]


def test_a_mig_claim_takes_one_partition(binds: list) -> None:
    s, _, _ = start(("nodes", node("dra", gpus=0)), ("resourceslices", rslice("dra", 1, mig=True)),
                    ("resourceclaims", claim("m1", cls="mig.nvidia.com")),
                    ("pods", claim_pod("p1", "m1")))  # fmt: skip
    run(s)
    (write,) = binds[0][2]
    (result,) = write.allocation["devices"]["results"]  # type: ignore[index]
    assert "-mig-" in result["device"]
    assert s.snapshot.free[s.snapshot.row("dra"), 0] == MILLI - 125


def test_a_relist_prunes_claims_that_vanished_during_a_watch_gap() -> None:
    allocated = {"allocation": {"devices": {"results": [
        {"request": "gpu", "driver": "gpu.nvidia.com", "pool": "dra", "device": "gpu-0"}]},
        "nodeSelector": {"nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": ["dra"]}]}]}}}  # fmt: skip
    s, _, q = start(("nodes", node("dra", gpus=0)), ("resourceslices", rslice("dra", 2)),
                    ("resourceclaims", claim("c9", **allocated)))  # fmt: skip
    run(s)
    r = s.snapshot.row("dra")
    assert s.snapshot.free[r, 0] == 0
    q.put(Event("resourceclaims", "RELIST", {}))
    q.put(Event("resourceclaims", "SYNCED", {}))
    run(s, 1)
    assert s.snapshot.free[r, 0] == MILLI and not s.dra.held
