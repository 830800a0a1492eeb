"""Fake GPU node specs and Node objects: pure functions, no cluster."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from pathlib import Path

import orjson
import pytest

from ballast.api import wellknown as wk
from ballast.localcluster.nodes import MIB, build_node, openb_nodes, profile_nodes
from ballast.localcluster.profiles import CATALOGUE, OPENB_GPU_MEMORY_MIB, PROFILES, ZONES

T0 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)

OPENB_CSV = """\
sn,cpu_milli,memory_mib,gpu,model
openb-node-0000,64000,262144,2,P100
openb-node-0001,96000,393216,8,G2
openb-node-0002,8000,32768,1,V100M16
openb-node-0003,104000,524288,2,T4
openb-node-0004,32000,131072,4,NEWGPU
"""


@pytest.fixture
def openb_csv(tmp_path: Path) -> Path:
    path = tmp_path / "openb_node_list_gpu_node.csv"
    path.write_text(OPENB_CSV)
    return path


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("count", [0, 1, 7, 50])
def test_profile_is_deterministic_and_sized(profile: str, count: int) -> None:
    first = profile_nodes(profile, count, seed=3)
    assert len(first) == count
    assert first == profile_nodes(profile, count, seed=3)
    assert len({s.name for s in first}) == count
    assert [build_node(s, T0) for s in first] == [
        build_node(s, T0) for s in profile_nodes(profile, count, seed=3)
    ]


def test_seed_changes_caches_not_shapes() -> None:
    a, b = profile_nodes("mixed", 20, seed=1), profile_nodes("mixed", 20, seed=2)
    assert [(s.name, s.product, s.gpus) for s in a] == [(s.name, s.product, s.gpus) for s in b]
    assert [s.cache for s in a] != [s.cache for s in b]


def test_larger_fleet_extends_a_smaller_one_per_class() -> None:
    small = {s.name: s for s in profile_nodes("h100", 5, seed=9)}
    large = {s.name: s for s in profile_nodes("h100", 12, seed=9)}
    assert all(large[name] == spec for name, spec in small.items())


def test_mixed_profile_follows_shares() -> None:
    specs = profile_nodes("mixed", 8)
    assert Counter(s.product for s in specs) == {
        "NVIDIA-H100-80GB-HBM3": 2,
        "NVIDIA-A100-SXM4-40GB": 2,
        "NVIDIA-L4": 4,
    }
    big = profile_nodes("mixed", 1000)
    assert Counter(s.gpus for s in big) == {8: 500, 4: 500}
    assert {s.zone for s in big} == set(ZONES)


def test_caches_fit_capacity_and_gpu_memory() -> None:
    catalogue = {e.item for e in CATALOGUE}
    for spec in profile_nodes("mixed", 60, seed=5) + profile_nodes("small", 20, seed=5):
        items = spec.cache.items
        assert 1 <= len(items) <= 6
        assert sum(i.bytes for i in items) <= spec.cache.capacity_bytes
        assert len({i.key for i in items}) == len(items)
        assert set(items) <= catalogue
        gpu_bytes = spec.gpus * spec.gpu_memory_mib * MIB
        assert all(i.bytes <= gpu_bytes for i in items if i.kind == "model")


def test_unknown_profile_and_negative_count() -> None:
    with pytest.raises(ValueError, match="unknown profile"):
        profile_nodes("tpu", 3)
    with pytest.raises(ValueError, match="count"):
        profile_nodes("mixed", -1)


def test_build_node_shape() -> None:
    spec = profile_nodes("h100", 1, seed=0)[0]
    node = build_node(spec, T0)
    meta, status = node["metadata"], node["status"]
    assert node["apiVersion"] == "v1" and node["kind"] == "Node"
    assert node["spec"] == {}  # no taints: pods schedule without tolerations
    assert meta["name"] == spec.name
    assert meta["annotations"]["kwok.x-k8s.io/node"] == "fake"
    assert meta["labels"] == {
        "type": "kwok",
        "kubernetes.io/hostname": spec.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        wk.LABEL_GPU_PRODUCT: "NVIDIA-H100-80GB-HBM3",
        wk.LABEL_GPU_MEMORY_MIB: "81559",
        wk.LABEL_GPU_COUNT: "8",
        wk.LABEL_ZONE: ZONES[0],
        wk.LABEL_REGION: "us-central1",
        "node.kubernetes.io/instance-type": "p5.48xlarge",
    }
    assert status["capacity"] == {
        "cpu": "192",
        "memory": f"{2048 * 1024}Mi",
        "pods": "110",
        wk.GPU_RESOURCE: "8",
    }
    assert status["allocatable"] == status["capacity"]


def test_build_node_annotations_round_trip_through_wellknown_parsers() -> None:
    spec = profile_nodes("mixed", 3, seed=4)[2]
    annotations = build_node(spec, T0)["metadata"]["annotations"]
    cache = wk.parse_cache_inventory(annotations[wk.ANNOTATION_CACHE])
    telemetry = wk.parse_telemetry(annotations[wk.ANNOTATION_TELEMETRY])
    assert cache.problems == [] and cache.value == spec.cache
    assert telemetry.problems == []
    assert telemetry.value.observed_at == T0
    assert telemetry.value.gpus == spec.telemetry.gpus
    assert [g.index for g in telemetry.value.gpus] == list(range(spec.gpus))
    assert all(g.healthy and g.memory_total_mib == spec.gpu_memory_mib for g in spec.telemetry.gpus)
    assert orjson.loads(annotations[wk.ANNOTATION_CACHE]) == spec.cache.as_dict()


def test_build_node_stamps_now_by_default() -> None:
    spec = profile_nodes("small", 1)[0]
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    raw = build_node(spec)["metadata"]["annotations"][wk.ANNOTATION_TELEMETRY]
    observed = wk.parse_telemetry(raw).value.observed_at
    assert observed is not None and observed >= before


def test_fractional_cpu_quantity() -> None:
    spec = profile_nodes("small", 1)[0]
    odd = dataclasses.replace(spec, cpu_milli=7500)
    assert build_node(odd, T0)["status"]["capacity"]["cpu"] == "7500m"


def test_openb_nodes(openb_csv: Path) -> None:
    specs = openb_nodes(openb_csv)
    assert [s.name for s in specs] == [f"openb-node-000{i}" for i in range(5)]
    first, g2, _, _, unknown = specs
    assert (first.product, first.gpus, first.cpu_milli, first.memory_mib) == (
        "P100",
        2,
        64000,
        262144,
    )
    assert first.gpu_memory_mib == OPENB_GPU_MEMORY_MIB["P100"]
    assert g2.product == "G2" and g2.gpus == 8
    assert unknown.gpu_memory_mib == 16384  # not in the table: the documented default
    assert [s.zone for s in specs[:3]] == list(ZONES)
    node = build_node(g2, T0)
    assert node["metadata"]["labels"][wk.LABEL_GPU_PRODUCT] == "G2"
    assert node["status"]["capacity"][wk.GPU_RESOURCE] == "8"
    assert "node.kubernetes.io/instance-type" not in node["metadata"]["labels"]


def test_openb_limit_and_determinism(openb_csv: Path) -> None:
    assert len(openb_nodes(openb_csv, limit=2)) == 2
    assert openb_nodes(openb_csv, seed=7) == openb_nodes(openb_csv, seed=7)
    assert [s.cache for s in openb_nodes(openb_csv, seed=7)] != [
        s.cache for s in openb_nodes(openb_csv, seed=8)
    ]


def test_openb_real_node_list_when_present() -> None:
    path = Path(__file__).resolve().parents[3] / "shared/traces/openb/openb_node_list_gpu_node.csv"
    if not path.exists():
        pytest.skip(f"{path} is not on this machine")
    specs = openb_nodes(path)
    assert len(specs) == 1213
    assert {s.product for s in specs} == set(OPENB_GPU_MEMORY_MIB)
    assert all(s.gpus > 0 for s in specs)
