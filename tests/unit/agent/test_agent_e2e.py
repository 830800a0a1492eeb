"""End to end: the real ``ballast agent`` process over the fake NVML library, read via /metrics."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from ballast.api.wellknown import parse_telemetry

INTERVAL = 0.2
# Two intervals on a quiet machine; room for a loaded 2-core CI runner.
SLACK = 10.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        return str(r.read().decode())


def _value(text: str, name: str, gpu: str) -> float | None:
    m = re.search(rf'^{name}{{[^}}]*gpu="{gpu}"[^}}]*}} (\S+)$', text, re.MULTILINE)
    return float(m.group(1)) if m else None


def _until(cond: Callable[[], bool], timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if cond():
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout}s")


@pytest.fixture
def agent(
    gpus, fake_nvml_lib: str, tmp_path: Path
) -> Iterator[tuple[int, Path, subprocess.Popen[bytes]]]:
    port = _free_port()
    record = tmp_path / "record.json"
    env = {**os.environ, "FAKE_NVML_FIXTURE": str(gpus.path), "NODE_NAME": "gpu-node-1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ballast",
            "agent",
            "--interval",
            str(INTERVAL),
            "--metrics-port",
            str(port),
            "--metrics-addr",
            "127.0.0.1",
            "--record-out",
            str(record),
            "--nvml-library",
            fake_nvml_lib,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:

        def up() -> bool:
            try:
                return "DCGM_FI_DEV_GPU_UTIL" in _scrape(port)
            except OSError:
                assert proc.poll() is None, proc.communicate()[0].decode()
                return False

        _until(up, 15)
        yield port, record, proc
    finally:
        proc.terminate()
        try:
            out = proc.communicate(timeout=5)[0].decode()
        except subprocess.TimeoutExpired:
            proc.kill()
            out = proc.communicate()[0].decode()
        assert "Traceback" not in out, out


def test_agent_end_to_end(gpus, agent) -> None:
    port, record, proc = agent
    # /metrics answers before the first collection lands on a loaded machine: wait for it.
    deadline = time.monotonic() + 30
    text = _scrape(port)
    while 'Hostname="gpu-node-1"' not in text and time.monotonic() < deadline:
        time.sleep(0.2)
        text = _scrape(port)
    for name in (
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_FB_FREE",
        "DCGM_FI_DEV_POWER_USAGE",
        "DCGM_FI_DEV_GPU_TEMP",
        "DCGM_FI_DEV_XID_ERRORS",
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        "ballast_agent_gpu_healthy",
        "ballast_agent_collect_seconds_count",
        "ballast_agent_problems",
    ):
        assert name in text, name
    assert 'Hostname="gpu-node-1"' in text and 'UUID="GPU-aaaa"' in text
    assert 'modelName="NVIDIA H100 80GB HBM3"' in text
    assert _value(text, "DCGM_FI_DEV_GPU_UTIL", "0") == 37.0
    assert _value(text, "DCGM_FI_DEV_FB_USED", "0") == 8192.0
    assert _value(text, "DCGM_FI_DEV_FB_FREE", "0") == 73728.0
    assert _value(text, "DCGM_FI_DEV_POWER_USAGE", "0") == 250.5
    assert _value(text, "DCGM_FI_DEV_GPU_TEMP", "1") == 30.0
    assert "ballast_agent_nvml_available 1.0" in text

    # The record file is in the annotation format the scheduler parses.
    _until(record.exists, 30)
    parsed = parse_telemetry(record.read_text())
    assert parsed.problems == [] and [g.index for g in parsed.value.gpus] == [0, 1]

    # Utilisation moves: the next interval shows it.
    gpus.gpu(0, util=91)
    _until(lambda: _value(_scrape(port), "DCGM_FI_DEV_GPU_UTIL", "0") == 91.0, SLACK)

    # A fatal XID on GPU 1: unhealthy within two intervals (the event thread, not polling).
    gpus.raise_xid(1, 79)
    took = _until(lambda: _value(_scrape(port), "ballast_agent_gpu_healthy", "1") == 0.0, SLACK)
    text = _scrape(port)
    assert _value(text, "DCGM_FI_DEV_XID_ERRORS", "1") == 79.0
    assert _value(text, "ballast_agent_gpu_healthy", "0") == 1.0
    _until(lambda: not orjson.loads(record.read_text())["gpus"][1]["healthy"], SLACK)
    print(f"xid to unhealthy: {took:.3f}s")

    # A call GPU 0 does not support: one problem, the rest still reported.
    gpus.gpu(0, unsupported="temp")
    _until(lambda: 'call="nvmlDeviceGetTemperature"' in _scrape(port), SLACK)
    # The problem is counted during the collection; the series goes when it ends.
    _until(lambda: _value(_scrape(port), "DCGM_FI_DEV_GPU_TEMP", "0") is None, SLACK)
    text = _scrape(port)
    assert _value(text, "DCGM_FI_DEV_GPU_UTIL", "0") == 91.0

    # GPU 1 vanishes: its series disappear, the agent lives on.
    gpus.set(count=1)
    gpu1 = re.compile(r'^(DCGM_FI_DEV_\w+|ballast_agent_gpu_healthy)\{[^}]*gpu="1"', re.M)
    _until(lambda: not gpu1.search(_scrape(port)), SLACK)
    text = _scrape(port)
    assert _value(text, "DCGM_FI_DEV_GPU_UTIL", "0") == 91.0
    assert "ballast_agent_gpus 1.0" in text
    assert proc.poll() is None


def test_agent_reports_a_lost_gpu(gpus, agent) -> None:
    port, _, proc = agent
    gpus.gpu(0, lost=1)  # GPU_IS_LOST on every call: unhealthy, values dropped, no crash
    _until(lambda: _value(_scrape(port), "ballast_agent_gpu_healthy", "0") == 0.0, SLACK)
    assert _value(_scrape(port), "DCGM_FI_DEV_GPU_UTIL", "0") is None
    assert proc.poll() is None


def test_agent_starts_without_nvml(gpus, fake_nvml_lib: str, tmp_path: Path) -> None:
    gpus.set(init_error=9)
    port = _free_port()
    env = {**os.environ, "FAKE_NVML_FIXTURE": str(gpus.path)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ballast",
            "agent",
            "--interval",
            str(INTERVAL),
            "--metrics-port",
            str(port),
            "--metrics-addr",
            "127.0.0.1",
            "--nvml-library",
            fake_nvml_lib,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:

        def reports_unavailable() -> bool:
            try:
                return "ballast_agent_nvml_available 0.0" in _scrape(port)
            except OSError:
                return False

        _until(reports_unavailable, 15)
        gpus.set(init_error=0)  # the driver comes back: init is retried (backoff starts at 1 s)
        _until(lambda: "ballast_agent_nvml_available 1.0" in _scrape(port), 5)
        assert _value(_scrape(port), "DCGM_FI_DEV_GPU_UTIL", "0") == 37.0
        assert proc.poll() is None
    finally:
        proc.terminate()
        out = proc.communicate(timeout=5)[0].decode()
    assert "Traceback" not in out, out
    assert "call=nvmlInit code=9" in out
