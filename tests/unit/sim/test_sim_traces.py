"""Trace loaders read the published formats."""

from __future__ import annotations

import itertools
from pathlib import Path

from sim_fixtures import write_genai, write_openb

from ballast.api.wellknown import LABEL_GPU_PRODUCT
from ballast.sim.traces import (
    load_genai_requests,
    load_latencies_ms,
    load_openb_nodes,
    load_openb_pods,
)


def test_openb_nodes_and_pods(tmp_path: Path) -> None:
    nodes_csv, pods_csv = write_openb(tmp_path)
    nodes = load_openb_nodes(nodes_csv)
    assert (
        len(nodes) == 7 and nodes[0].gpu_count == 8 and nodes[0].labels[LABEL_GPU_PRODUCT] == "G2"
    )
    assert nodes[-1].gpu_count == 0 and nodes[-1].gpu_product == ""
    tasks = load_openb_pods(pods_csv)
    assert [t.pod.creation_time for t in tasks] == sorted(t.pod.creation_time for t in tasks)
    for t in tasks:
        p = t.pod
        assert not (p.gpus and p.gpu_milli)
        assert "nan" not in p.gpu_products
        assert t.duration_s == 5000


def test_openb_without_creation_time_keeps_file_order(tmp_path: Path) -> None:
    f = tmp_path / "m.csv"
    f.write_text(
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli\na,1,1,8,1000\nb,1,1,1,460\nc,1,1,0,0\n"
    )
    tasks = load_openb_pods(f)
    assert [(t.pod.name, t.pod.gpus, t.pod.gpu_milli) for t in tasks] == [
        ("a", 8, 0),
        ("b", 0, 460),
        ("c", 0, 0),
    ]


def test_genai(tmp_path: Path) -> None:
    req, lat = write_genai(tmp_path)
    reqs = load_genai_requests(req)
    assert reqs[0].time == 0 and all(a.time <= b.time for a, b in itertools.pairwise(reqs))
    assert len(load_latencies_ms(lat)) == 50
