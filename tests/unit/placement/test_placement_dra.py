"""DRA devices: CEL selectors, slices mapped onto GPU columns, allocation by the engine."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ballast.localcluster.dradriver import device_classes, gpu_devices
from ballast.placement import cel
from ballast.placement.dra import Ask, Device, DeviceTable, Request
from ballast.placement.engine import Engine
from ballast.placement.objects import MILLI, NodeInfo, Pod
from ballast.placement.snapshot import Snapshot
from ballast.scheduler import dra_mapping as dm

GPU_CLASS = device_classes()[0]["spec"]["selectors"][0]["cel"]["expression"]
MIG_CLASS = device_classes()[1]["spec"]["selectors"][0]["cel"]["expression"]
H100 = "NVIDIA H100 80GB HBM3"
L4 = "NVIDIA L4"


def slice_obj(node: str, gpus: int, product: str, mem_mib: int, mig: bool = False) -> dict:
    return {
        "metadata": {"name": f"{node}-gpu.nvidia.com"},
        "spec": {"driver": "gpu.nvidia.com", "nodeName": node, "pool": {"name": node},
                 "devices": gpu_devices(node, gpus, product, mem_mib, mig)},
    }  # fmt: skip


def devices(node: str, gpus: int, product: str = H100, mem: int = 81559, mig: bool = False):
    mapped = dm.resource_slice(slice_obj(node, gpus, product, mem, mig))
    assert mapped.problems == []
    return mapped.value[1]


def table_with(*nodes: tuple[str, int, str, bool]) -> DeviceTable:
    t = DeviceTable()
    for name, n, product, mig in nodes:
        t.set_slice(f"{name}-s", name, devices(name, n, product, mig=mig))
    return t


# ------------------------------------------------------------------------------------ CEL
def test_selectors_read_nvidia_attributes_capacity_and_versions() -> None:
    d = devices("n1", 1)[0]
    act = cel.activation(d.driver, d.attributes, d.capacity)
    ok = [
        GPU_CLASS,
        f'device.attributes["gpu.nvidia.com"].productName == "{H100}"',
        'device.capacity["gpu.nvidia.com"].memory.compareTo(quantity("40Gi")) >= 0',
        'device.attributes["gpu.nvidia.com"].cudaComputeCapability.isGreaterThan(semver("8.9.0"))',
        'device.attributes["gpu.nvidia.com"].architecture == "Hopper"',
    ]
    for expr in ok:
        assert cel.evaluate(expr, act) == (True, ""), expr
    assert cel.evaluate(MIG_CLASS, act) == (False, "")
    assert cel.evaluate('device.capacity["gpu.nvidia.com"].memory > 100 * 1024', act)[0]


def test_bad_selectors_never_raise() -> None:
    assert "does not compile" in cel.compile_error('device.attributes["x"].y ==')
    assert cel.compile_error(GPU_CLASS) == ""
    d = devices("n1", 1)[0]
    act = cel.activation(d.driver, d.attributes, d.capacity)
    matched, error = cel.evaluate('device.attributes["gpu.nvidia.com"].nosuch == 1', act)
    assert not matched and "nosuch" in error
    matched, error = cel.evaluate("device.driver + 1 == 2", act)
    assert not matched and error


def test_quantities() -> None:
    assert cel.parse_quantity("80Gi") == 80 * 2**30
    assert cel.parse_quantity("1500M") == 1_500_000_000
    assert cel.parse_quantity("500m") == 1
    assert cel.parse_quantity("-1") is None
    assert cel.parse_quantity("lots") is None


# ------------------------------------------------------------------------- the boundary
def test_garbage_slices_are_ignored_whole() -> None:
    bad = slice_obj("n1", 2, H100, 81559)
    bad["spec"]["devices"][1]["attributes"]["productName"] = {"string": 5}
    mapped = dm.resource_slice(bad)
    assert mapped.problems and mapped.value == ("n1", ())
    for junk in ({}, {"spec": "x"}, {"spec": {"devices": "x", "nodeName": "n"}},
                 {"spec": {"driver": "d", "pool": {"name": "p"}, "nodeName": "n",
                           "devices": [{"name": "a"}, {"name": "a"}]}}):  # fmt: skip
        m = dm.resource_slice(junk)
        assert m.value[1] == ()


def test_claims_map_what_ballast_supports() -> None:
    c = dm.claim({
        "metadata": {"namespace": "ns", "name": "c", "uid": "u1"},
        "spec": {"devices": {"requests": [
            {"name": "gpu", "exactly": {"deviceClassName": "gpu.nvidia.com", "count": 2,
                                        "selectors": [{"cel": {"expression": "true"}}]}},
        ]}},
        "status": {"allocation": {"devices": {"results": [
            {"request": "gpu", "driver": "gpu.nvidia.com", "pool": "n1", "device": "gpu-0"}]},
            "nodeSelector": {"nodeSelectorTerms": [{"matchFields": [
                {"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}},
            "reservedFor": [{"resource": "pods", "name": "p", "uid": "pu"}]},
    })  # fmt: skip
    assert c.requests == (dm.ClaimRequest("gpu", "gpu.nvidia.com", ("true",), 2),)
    assert c.allocated and c.node == "n1" and c.reserved_for == ("pu",)
    assert c.results[0].key == "gpu.nvidia.com/n1/gpu-0"
    odd = dm.claim({"spec": {"devices": {"requests": [
        {"name": "a", "firstAvailable": []},
        {"name": "b", "exactly": {"deviceClassName": "x", "allocationMode": "All"}}]}}})  # fmt: skip
    assert len(odd.problems) == 2 and not odd.requests


# ---------------------------------------------------------------------------- the table
def test_columns_follow_the_minor_number_and_mig_shares_its_parent() -> None:
    t = table_with(("n1", 12, H100, True))
    gpus = [s for s in t.devices("n1") if s.milli == MILLI]
    assert [s.device.name for s in gpus][:3] == ["gpu-0", "gpu-1", "gpu-2"]
    assert [s.column for s in gpus] == list(range(12))
    assert next(s for s in gpus if s.device.name == "gpu-10").column == 10
    migs = [s for s in t.devices("n1") if s.milli < MILLI]
    assert len(migs) == 12 * 7 and all(s.milli == 125 for s in migs)
    assert {s.column for s in migs if s.device.name.startswith("gpu-3-")} == {3}
    assert t.node_facts("n1") == (12, 81559, H100)


def test_mig_partitions_conflict_with_their_gpu_and_overlaps() -> None:
    t = table_with(("n1", 1, H100, True))
    slots = {s.device.name: s for s in t.devices("n1")}
    t.hold("c1", [slots["gpu-0-mig-19-0-1"].device.key])
    assert not t.available("n1", slots["gpu-0-mig-19-0-1"])
    assert t.available("n1", slots["gpu-0-mig-19-1-1"])
    t.hold("c2", [slots["gpu-0"].device.key])
    assert not t.available("n1", slots["gpu-0-mig-19-1-1"])
    t.release("c2")
    assert t.available("n1", slots["gpu-0-mig-19-1-1"])


def _req(uid: str, *sels: str, count: int = 1) -> Request:
    return Request(uid, f"ns/{uid}", "gpu", (GPU_CLASS, *sels), count)


def _snapshot(t: DeviceTable, ext: dict[str, int] | None = None) -> Snapshot:
    snap = Snapshot()
    snap.dra = t
    for node in sorted(t.slots):
        n, mem, product = t.node_facts(node)
        e = (ext or {}).get(node, 0)
        t.ext[node] = e
        snap.add_node(NodeInfo(node, max(n, e), mem, product, 64_000, 512_000))
    return snap


def test_engine_places_a_claim_on_matching_devices_only() -> None:
    t = table_with(("h1", 8, H100, False), ("l1", 8, L4, False))
    snap = _snapshot(t)
    pod = Pod("ns", "p", "p-uid", gpus=2)
    t.asks[pod.id] = Ask((_req("c1", f'device.attributes["gpu.nvidia.com"].productName == "{L4}"',
                               count=2),))  # fmt: skip
    d = Engine("ballast").decide(snap, pod, now=0.0)
    assert d.node == "l1" and len(d.gpus) == 2
    got = t.allocate(t.asks[pod.id], "l1", d.gpus, snap.free[snap.row("l1")])
    assert not isinstance(got, str)
    assert sorted(a.column for a in got) == sorted(d.gpus)
    assert all(a.device.attr("productName") == L4 for a in got)


def test_claims_that_no_device_satisfies_find_no_node() -> None:
    t = table_with(("h1", 2, H100, False))
    snap = _snapshot(t)
    pod = Pod("ns", "p", "p-uid", gpus=4)
    t.asks[pod.id] = Ask((_req("c1", count=4),))
    d = Engine("ballast").decide(snap, pod, now=0.0)
    assert d.node is None
    assert "2 device(s) match, 2 free, 4 needed" in t.explain(t.asks[pod.id].requests)


def test_device_plugin_pods_never_take_dra_only_gpus() -> None:
    t = table_with(("dra", 8, H100, False), ("both", 4, H100, False))
    snap = _snapshot(t, ext={"both": 4})
    snap.add_node(NodeInfo("plain", 8, 81559, H100, 64_000, 512_000))
    d = Engine("ballast").decide(snap, Pod("ns", "x", gpus=8), now=0.0)
    assert d.node == "plain"
    d = Engine("ballast").decide(snap, Pod("ns", "y", gpus=4), now=0.0)
    assert d.node in ("plain", "both")
    assert Engine("ballast").decide(snap, Pod("ns", "z"), now=0.0).node is not None


# ----------------------------------------------------------------------------- property
SELECTORS = (
    "true",
    f'device.attributes["gpu.nvidia.com"].productName == "{L4}"',
    'device.capacity["gpu.nvidia.com"].memory.compareTo(quantity("40Gi")) >= 0',
    'device.attributes["gpu.nvidia.com"].pcieBusID.endsWith("00.0")',
)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, len(SELECTORS) - 1), st.integers(1, 4), st.booleans()),
        min_size=1,
        max_size=12,
    )
)
def test_allocation_never_reuses_a_device_and_satisfies_selectors(
    asks: list[tuple[int, int, bool]],
) -> None:
    t = table_with(("h1", 4, H100, True), ("l1", 4, L4, False))
    snap = _snapshot(t)
    engine = Engine("ballast")
    holders: dict[str, str] = {}
    for i, (sel, count, mig) in enumerate(asks):
        expr = SELECTORS[sel]
        uid = f"c{i}"
        req = Request(uid, f"ns/{uid}", "r", (MIG_CLASS if mig else GPU_CLASS, expr),
                      1 if mig else count)  # fmt: skip
        is_mig, milli, problem = t.shape((req,))
        if problem or (mig and not is_mig):
            continue
        pod = Pod("ns", uid, uid, gpus=0 if mig else count, gpu_milli=milli if mig else 0)
        ask = Ask((req,), "", is_mig, milli)
        t.asks[pod.id] = ask
        d = engine.decide(snap, pod, now=0.0)
        del t.asks[pod.id]
        if d.node is None:
            continue
        got = t.allocate(ask, d.node, d.gpus, snap.usable_free(())[snap.row(d.node)])
        assert not isinstance(got, str), got
        for a in got:
            assert a.device.key not in holders, "a device allocated twice"
            holders[a.device.key] = uid
            assert t.matches(d.node, next(s for s in t.devices(d.node) if s.device == a.device),
                             req.selectors)[0]  # fmt: skip
            hold = Pod("ns", f"{uid}-{a.device.name}", f"claim/{uid}/{a.device.key}",
                       gpus=1 if a.milli == MILLI else 0,
                       gpu_milli=0 if a.milli == MILLI else a.milli)  # fmt: skip
            snap.account(hold, d.node, (a.column,), a.milli, start_time=0.0)
        assert not t.hold(uid, [a.device.key for a in got])
    # MIG devices held on one GPU never overlap, and never sit on a held whole GPU.
    for node in t.slots:
        for col in range(8):
            held = [s for s in t.devices(node) if s.column == col and s.device.key in t.held]
            whole = [s for s in held if s.milli == MILLI]
            assert len(whole) <= 1 and (not whole or len(held) == 1)
            slices = [x for s in held for x in s.device.memory_slices]
            assert len(slices) == len(set(slices))


def test_device_records_are_keyed_by_driver_pool_and_name() -> None:
    d = Device("gpu.nvidia.com", "n1", "gpu-0", "n1")
    assert d.key == "gpu.nvidia.com/n1/gpu-0" and d.kind == "other"


def test_natural_order() -> None:
    from ballast.placement.dra import natural

    names = ["gpu-10", "gpu-2", "gpu-1-mig-19-3-1", "gpu-1"]
    assert sorted(names, key=natural) == ["gpu-1", "gpu-1-mig-19-3-1", "gpu-2", "gpu-10"]
