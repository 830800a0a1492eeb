"""A real Prometheus beside the test cluster scrapes the scheduler, the operator and an agent.

The agent runs the real ``ballast agent`` over the fake NVML library (tests/fakenvml).
Every Ballast /metrics endpoint is also checked with ``promtool check metrics``, and
every query of the Grafana dashboard is evaluated by this Prometheus without error.
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ballast.localcluster import LocalCluster, tools
from ballast.localcluster.ballast_procs import BallastProcess
from ballast.telemetry.assets import DASHBOARD_FILE
from ballast.telemetry.prometheus import Prometheus, TargetsResult

FAKE_NVML = Path(__file__).resolve().parents[2] / "fakenvml" / "fake_nvml.c"
JOBS = {"prometheus", "ballast-scheduler", "ballast-operator", "ballast-agent"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def agent_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real node agent over the fake NVML library (two GPUs), serving /metrics."""
    cc = shutil.which("cc")
    if cc is None:
        pytest.fail("no C compiler (cc) on PATH: cannot build the fake NVML library")
    tmp = tmp_path_factory.mktemp("prom-agent")
    lib = tmp / "libnvidia-ml.so.1"
    subprocess.run(
        [cc, "-shared", "-fPIC", "-O1", "-o", str(lib), str(FAKE_NVML), "-lpthread"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    fixture = tmp / "fixture.txt"
    fixture.write_text(
        "count=2\ndriver=550.54.15\n"
        "gpu.0.name=NVIDIA L4\ngpu.0.uuid=GPU-prom-0\ngpu.0.util=40\n"
        "gpu.1.name=NVIDIA L4\ngpu.1.uuid=GPU-prom-1\ngpu.1.util=60\n"
    )
    port = _free_port()
    log = (tmp / "agent.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ballast", "agent", "--interval", "0.5",
         "--metrics-port", str(port), "--metrics-addr", "127.0.0.1",
         "--record-out", str(tmp / "record.json"), "--nvml-library", str(lib)],
        env={**os.environ, "FAKE_NVML_FIXTURE": str(fixture), "NODE_NAME": "prom-node-1"},
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    yield port
    proc.terminate()
    proc.wait(10)
    log.close()


@pytest.fixture(scope="module")
def prom(
    prometheus: LocalCluster,
    scheduler: BallastProcess,
    operator: BallastProcess,
    agent_port: int,
) -> Iterator[Prometheus]:
    """The session's Prometheus with the scheduler, the operator and the agent registered."""
    cluster = prometheus
    targets = {
        "ballast-scheduler": scheduler.metrics_port,  # type: ignore[attr-defined]
        "ballast-operator": operator.metrics_port,  # type: ignore[attr-defined]
        "ballast-agent": agent_port,
    }
    for job, port in targets.items():
        cluster.add_scrape_target(job, f"127.0.0.1:{port}", name=f"pytest-{job}")
    state = cluster.state
    assert state is not None and state.prometheus_url
    client = Prometheus(state.prometheus_url)
    yield client
    client.close()
    for job in targets:
        cluster.remove_scrape_target(job, f"pytest-{job}")


def _all_up(prom: Prometheus, timeout_s: float) -> TargetsResult:
    deadline = time.monotonic() + timeout_s
    while True:
        got = prom.targets()
        if not got.problems and got.jobs() >= JOBS and not got.down():
            return got
        if time.monotonic() > deadline:
            return got
        time.sleep(0.5)


def test_prometheus_scrapes_every_target(prom: Prometheus) -> None:
    got = _all_up(prom, timeout_s=30)
    assert not got.problems
    assert got.jobs() >= JOBS, f"jobs seen: {sorted(got.jobs())}"
    assert not got.down(), [(t.job, t.url, t.health, t.last_error) for t in got.down()]
    # The agent's dcgm-compatible series arrive, labelled by the agent (honor_labels).
    deadline = time.monotonic() + 15
    util = prom.query("DCGM_FI_DEV_GPU_UTIL")
    while len(util.values) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
        util = prom.query("DCGM_FI_DEV_GPU_UTIL")
    assert util.ok
    by_uuid = {dict(k)["UUID"]: v for k, v in util.values.items()}
    assert by_uuid == {"GPU-prom-0": 40.0, "GPU-prom-1": 60.0}
    assert {dict(k)["Hostname"] for k in util.values} == {"prom-node-1"}


def test_recording_rules_are_loaded_and_evaluated(prom: Prometheus) -> None:
    _all_up(prom, timeout_s=30)
    deadline = time.monotonic() + 20
    got = prom.query("ballast:gpus:count_by_model")
    while not got.values and time.monotonic() < deadline:
        time.sleep(0.5)
        got = prom.query("ballast:gpus:count_by_model")
    assert got.ok
    assert {dict(k)["modelName"]: v for k, v in got.values.items()} == {"NVIDIA L4": 2.0}
    bad = prom.query("sum(")
    assert not bad.ok and "400" in bad.problems[0]


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return str(r.read().decode())


# dcgm-exporter's label names, kept so that existing GPU dashboards work unchanged;
# promtool's lint asks for snake_case label names, the only finding accepted.
DCGM_LABELS = {"UUID", "modelName", "Hostname"}
CAMEL_CASE_FINDING = "label names should be written in 'snake_case' not 'camelCase'"
SNAKE_CASE = re.compile(r"^[a-z_][a-z0-9_]*$")


def test_every_ballast_metrics_endpoint_passes_promtool(prom: Prometheus) -> None:
    got = _all_up(prom, timeout_s=30)
    promtool = tools.binary(tools.PROMETHEUS, "promtool")
    checked = set()
    for t in got.targets:
        if not t.job.startswith("ballast-"):
            continue
        text = _scrape(t.url)
        out = subprocess.run(
            [str(promtool), "check", "metrics"], input=text, capture_output=True, text=True
        )
        findings = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
        label_names = {
            name
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            for name in sample.labels
        }
        camel = {n for n in label_names if not SNAKE_CASE.match(n)}
        assert camel <= DCGM_LABELS, f"{t.job}: label names not snake_case: {camel - DCGM_LABELS}"
        if camel:
            findings = [f for f in findings if not f.endswith(CAMEL_CASE_FINDING)]
        else:
            assert out.returncode == 0, f"{t.job} {t.url}:\n{out.stdout}{out.stderr}"
        assert not findings, f"{t.job} {t.url}:\n" + "\n".join(findings)
        checked.add(t.job)
    assert checked == JOBS - {"prometheus"}


def _exprs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("expr"), str):
            yield node["expr"]
        for value in node.values():
            yield from _exprs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _exprs(value)


def test_every_dashboard_query_evaluates(prom: Prometheus) -> None:
    dashboard = orjson.loads(DASHBOARD_FILE.read_bytes())
    exprs = list(_exprs(dashboard))
    assert len(exprs) >= 8
    # Grafana's built-in interval variables, as Grafana substitutes them.
    subst = {"$__rate_interval": "1m", "$__interval": "10s", "$__range": "5m"}
    failed = {}
    for expr in exprs:
        for var, value in subst.items():
            expr = expr.replace(var, value)
        got = prom.query(expr)
        if not got.ok:
            failed[expr] = got.problems
    assert not failed, failed
