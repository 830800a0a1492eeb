"""The real ``ballast agent`` attributes GPUs to the pods bound to its (kwok) node.

No kubelet socket here, so the agent falls back to Ballast's own assignment:
it lists and watches the node's pods on the real API server and reads their
``ballast.dev/gpu-ids``. The attribution must show in ``/metrics`` (the
``pod``/``namespace``/``container`` labels of the DCGM series) and in the
node's GPUNodeTelemetry record, follow pods that come and go, and cost no API
request per collection.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sutil import delete_nodes, gpu_node, new_test_id, wait_ready

from ballast.api import wellknown as wk
from ballast.kube.raw import GPUNODETELEMETRIES, PODS, Kube

FAKE_NVML = Path(__file__).resolve().parents[2] / "fakenvml" / "fake_nvml.c"
INTERVAL = 0.3
T = TypeVar("T")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            return str(r.read().decode())
    except OSError:
        return ""


def _until(what: str, fn: Callable[[], T | None], timeout: float = 20.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.1)


def _util_labels(text: str, gpu: str) -> dict[str, str] | None:
    """The labels of DCGM_FI_DEV_GPU_UTIL for one GPU."""
    for line in text.splitlines():
        if line.startswith("DCGM_FI_DEV_GPU_UTIL{") and f'gpu="{gpu}"' in line:
            return dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
    return None


def _counter(text: str, name: str, labels: str = "") -> float:
    m = re.search(rf"^{name}{{?{re.escape(labels)}}}? (\S+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


def _bound_pod(kube: Kube, namespace: str, name: str, node: str, gpu_ids: str) -> None:
    kube.create(
        PODS.path(namespace=namespace),
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "annotations": {wk.ANNOTATION_GPU_IDS: gpu_ids},
            },
            "spec": {
                "nodeName": node,  # bound as the scheduler would have, annotation included
                "tolerations": [{"operator": "Exists"}],
                "containers": [
                    {"name": "sidecar", "image": "registry.local/log:1"},
                    {
                        "name": "main",
                        "image": "registry.local/serve:1",
                        "resources": {"limits": {wk.GPU_RESOURCE: "1"}},
                    },
                ],
                "terminationGracePeriodSeconds": 0,
            },
        },
    )


@pytest.fixture
def fake_nvml(tmp_path: Path) -> Path:
    cc = shutil.which("cc")
    if cc is None:
        pytest.fail("no C compiler (cc) on PATH: cannot build the fake NVML library")
    lib = tmp_path / "libnvidia-ml.so.1"
    subprocess.run(
        [cc, "-shared", "-fPIC", "-O1", "-o", str(lib), str(FAKE_NVML), "-lpthread"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return lib


@pytest.fixture
def node(kube: Kube) -> Iterator[str]:
    tid = new_test_id()
    name = f"attr-{tid}"
    gpu_node(kube, name, test=tid, gpus=2)
    wait_ready(kube, tid, 1)
    yield name
    delete_nodes(kube, tid)
    kube.delete(GPUNODETELEMETRIES.path(name))


@pytest.fixture
def agent(
    crds: None, kubeconfig: Path, node: str, fake_nvml: Path, tmp_path: Path
) -> Iterator[int]:
    fixture = tmp_path / "fixture.txt"
    fixture.write_text(
        "count=2\ndriver=550.54.15\n"
        "gpu.0.name=NVIDIA H100 80GB HBM3\ngpu.0.uuid=GPU-attr-0\ngpu.0.util=10\n"
        "gpu.1.name=NVIDIA H100 80GB HBM3\ngpu.1.uuid=GPU-attr-1\ngpu.1.util=90\n"
    )
    port = _free_port()
    log = (tmp_path / "agent.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ballast", "agent", "--interval", str(INTERVAL),
         "--metrics-port", str(port), "--metrics-addr", "127.0.0.1",
         "--nvml-library", str(fake_nvml), "--no-events",
         "--node-name", node, "--kubeconfig", str(kubeconfig), "--publish-record",
         "--pod-resources-socket", str(tmp_path / "no-kubelet.sock")],
        env={**os.environ, "FAKE_NVML_FIXTURE": str(fixture)},
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _until("agent serves /metrics", lambda: "DCGM_FI_DEV_GPU_UTIL" in _scrape(port))
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
        if proc.returncode not in (0, -15):
            print((tmp_path / "agent.log").read_text()[-4000:])


def _record_pods(kube: Kube, node: str) -> dict[int, list[dict[str, Any]]]:
    obj = kube.get(GPUNODETELEMETRIES.path(node)) or {}
    gpus = (obj.get("status") or {}).get("gpus") or []
    return {g["index"]: g.get("pods") or [] for g in gpus}


def test_pods_bound_with_gpu_ids_are_attributed(
    kube: Kube, namespace: str, node: str, agent: int
) -> None:
    port = agent
    _bound_pod(kube, namespace, "chat", node, "1")
    _bound_pod(kube, namespace, "junk", node, "999")  # not a GPU of this node: ignored

    labels = _until(
        "GPU 1 attributed in /metrics",
        lambda: (lbl := _util_labels(_scrape(port), "1")) and lbl["pod"] == "chat" and lbl,
    )
    assert (labels["namespace"], labels["container"]) == (namespace, "main")
    free = _util_labels(_scrape(port), "0") or {}
    assert (free.get("pod"), free.get("namespace"), free.get("container")) == ("", "", "")
    pods = _until("GPU 1 attributed in the record", lambda: _record_pods(kube, node).get(1))
    assert pods == [
        {"namespace": namespace, "name": "chat", "container": "main", "source": "ballast"}
    ]
    assert _record_pods(kube, node).get(0) == []

    # A pod bound later arrives through the watch; a deleted one leaves.
    _bound_pod(kube, namespace, "late", node, "0")
    _until(
        "GPU 0 attributed to the late pod",
        lambda: (_util_labels(_scrape(port), "0") or {}).get("pod") == "late",
    )
    kube.delete(PODS.path("chat", namespace), grace_seconds=0)
    _until(
        "GPU 1 free again in /metrics and the record",
        lambda: (
            (_util_labels(_scrape(port), "1") or {}).get("pod") == ""
            and not _record_pods(kube, node).get(1)
        ),
    )

    # Cost: one list and one open watch, not a request per collection.
    started = time.monotonic()
    before = _scrape(port)
    time.sleep(20 * INTERVAL)
    after = _scrape(port)
    requests = sum(
        _counter(after, "ballast_agent_pod_api_requests_total", f'verb="{v}"')
        - _counter(before, "ballast_agent_pod_api_requests_total", f'verb="{v}"')
        for v in ("list", "watch")
    )
    minutes = (time.monotonic() - started) / 60
    print(f"pod API requests over 20 collections: {requests} ({requests / minutes:.2f}/min)")
    assert requests == 0
    assert _counter(after, "ballast_agent_pod_api_requests_total", 'verb="list"') == 1.0
    assert _counter(after, "ballast_agent_pod_api_requests_total", 'verb="watch"') == 1.0
    assert _counter(after, "ballast_agent_pod_resources_available") == 0.0
