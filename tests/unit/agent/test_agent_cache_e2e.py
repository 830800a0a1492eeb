"""End to end: ``ballast agent --cache-root`` scans real directories into its output and /metrics."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson

from ballast.api.v1alpha1 import GPUNodeTelemetry


def hub_model(hub: Path, repo: str, size: int) -> None:
    item = hub / f"models--{repo.replace('/', '--')}"
    (item / "blobs").mkdir(parents=True)
    (item / "blobs" / "sha").write_bytes(b"w" * size)
    (item / "snapshots" / "rev").mkdir(parents=True)
    (item / "snapshots" / "rev" / "model.safetensors").symlink_to("../../blobs/sha")


def agent(fake_nvml_lib: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "ballast", "agent", "--nvml-library", fake_nvml_lib,
            "--no-events", *args]  # fmt: skip


def test_once_prints_the_cache_the_record_would_carry(
    gpus: object, fake_nvml_lib: str, tmp_path: Path
) -> None:
    hub_model(tmp_path / "hub", "org/llm", 1234)
    (tmp_path / "data" / "wiki").mkdir(parents=True)
    (tmp_path / "data" / "wiki" / "part-0").write_bytes(b"d" * 77)
    (tmp_path / "data" / "bad name").mkdir()
    out = subprocess.run(
        agent(fake_nvml_lib, "--once", "--cache-root", f"model={tmp_path / 'hub'}:hf",
              "--cache-root", f"dataset={tmp_path / 'data'}", "--cache-capacity", "5000"),
        capture_output=True, timeout=60, env=os.environ.copy(),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr.decode()
    telemetry, cache_line = out.stdout.decode().strip().splitlines()[-2:]
    assert orjson.loads(telemetry)["gpus"]
    doc = orjson.loads(cache_line)
    got = [(i["kind"], i["name"], i["bytes"]) for i in doc["cache"]["items"]]
    assert got == [("model", "org/llm", 1234), ("dataset", "wiki", 77)]
    assert doc["cache"]["capacityBytes"] == 5000 and doc["problems"] == {"invalid_name": 1}
    GPUNodeTelemetry.model_validate({"status": {"cache": doc["cache"]}})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _metric(port: int, series: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    m = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else None


def _until(port: int, series: str, want: float, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if _metric(port, series) == want:
            return
        time.sleep(0.05)
    raise AssertionError(f"{series} != {want} within {timeout}s (last {_metric(port, series)})")


def test_running_agent_exports_the_cache_and_sees_a_new_item(
    gpus: object, fake_nvml_lib: str, tmp_path: Path
) -> None:
    root = tmp_path / "models"
    (root / "a").mkdir(parents=True)
    (root / "a" / "w").write_bytes(b"x" * 10)
    port = _free_port()
    proc = subprocess.Popen(
        agent(fake_nvml_lib, "--interval", "0.2", "--cache-interval", "0.2",
              "--metrics-port", str(port), "--metrics-addr", "127.0.0.1",
              "--cache-root", f"model={root}"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ.copy(),
    )  # fmt: skip
    try:
        _until(port, 'ballast_agent_cache_items{kind="model"}', 1.0)
        (root / "b").mkdir()
        (root / "b" / "w").write_bytes(b"y" * 32)
        _until(port, 'ballast_agent_cache_items{kind="model"}', 2.0)
        _until(port, 'ballast_agent_cache_bytes{kind="model"}', 42.0)
        assert (_metric(port, "ballast_agent_cache_scan_seconds_count") or 0) >= 2
        assert proc.poll() is None
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0].decode()
    assert "Traceback" not in out, out
