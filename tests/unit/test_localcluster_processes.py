"""Detached process handling and the cluster's failure reports, with stand-in binaries."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest

from ballast.localcluster import LocalCluster
from ballast.localcluster.binaries import BINARIES
from ballast.localcluster.errors import ComponentError
from ballast.localcluster.processes import (
    ProcessRef,
    free_ports,
    is_alive,
    port_in_use,
    spawn,
    start_time,
    stop,
    tail,
    wait_until,
)


def child_pid(log: Path) -> int:
    pattern = re.compile(r"^child=(\d+)$", re.M)  # not the command line heading the log
    assert wait_until(lambda: pattern.search(log.read_text()) is not None, 10, 0.05)
    match = pattern.search(log.read_text())
    assert match
    return int(match.group(1))


def test_spawn_detaches_and_stop_kills_the_whole_group(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "x.log"
    ref = spawn(["bash", "-c", "sleep 300 & echo child=$!; wait"], log)
    assert is_alive(ref) and ref.start_time == start_time(ref.pid) > 0
    child = ProcessRef(child_pid(log), 0)
    assert is_alive(child)
    assert log.read_text().startswith("==> ")  # the command line heads each run's log
    assert stop(ref, grace_s=5) is False  # SIGTERM was enough
    assert not is_alive(ref)
    assert wait_until(lambda: not is_alive(child), 5, 0.05), "a stray child survived"


def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    ref = spawn(
        ["bash", "-c", "trap '' TERM; echo child=$$; while :; do sleep 0.1; done"],
        tmp_path / "stubborn.log",
    )
    child_pid(tmp_path / "stubborn.log")  # the trap is installed
    started = time.monotonic()
    assert stop(ref, grace_s=0.5) is True
    assert not is_alive(ref) and time.monotonic() - started < 5


def test_a_recycled_pid_is_not_our_process(tmp_path: Path) -> None:
    ref = spawn(["sleep", "30"], tmp_path / "s.log")
    try:
        assert not is_alive(ProcessRef(ref.pid, ref.start_time + 1))
    finally:
        stop(ref)
    assert not is_alive(ProcessRef(2**22 + 7, 0))


def test_ports() -> None:
    ports = free_ports(6)
    assert len(set(ports)) == 6
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        assert port_in_use(taken)
        assert taken not in free_ports(3, exclude=[taken])
    assert not port_in_use(ports[0])


def test_tail(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    path.write_text("".join(f"line {i}\n" for i in range(100)))
    assert tail(path, 3) == "line 97\nline 98\nline 99"
    assert tail(tmp_path / "missing.log") == ""


def fake_bin_dir(tmp_path: Path, etcd: str) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in BINARIES:
        (bin_dir / name).write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / name).chmod(0o755)
    (bin_dir / "etcd").write_text(f"#!/usr/bin/env bash\n{etcd}\n")
    return bin_dir


def test_a_component_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    bin_dir = fake_bin_dir(tmp_path, 'echo "etcd: data dir is corrupt"; exit 3')
    cluster = LocalCluster("unit", tmp_path / "cache", bin_dir=bin_dir, ready_timeout_s=10)
    with pytest.raises(ComponentError) as info:
        cluster.up()
    message = str(info.value)
    assert "etcd exited during startup" in message
    assert str(cluster.layout.log("etcd")) in message
    assert "etcd: data dir is corrupt" in message
    assert cluster.state is None and not cluster.kubeconfig.exists()


def test_a_component_that_hangs_times_out_and_is_stopped(tmp_path: Path) -> None:
    bin_dir = fake_bin_dir(tmp_path, 'sleep 300 & echo "child=$!"; wait')
    cluster = LocalCluster("unit", tmp_path / "cache", bin_dir=bin_dir, ready_timeout_s=1)
    with pytest.raises(ComponentError, match=r"etcd not ready after 1s"):
        cluster.up()
    child = ProcessRef(child_pid(cluster.layout.log("etcd")), 0)
    assert wait_until(lambda: not is_alive(child), 5, 0.05), "the failed etcd left a stray"
    assert cluster.state is None
    assert cluster.status().components == []


def test_a_port_taken_during_startup_is_retried_with_new_ports(tmp_path: Path) -> None:
    bin_dir = fake_bin_dir(tmp_path, 'echo "listen tcp: bind: address already in use"; exit 1')
    cluster = LocalCluster("unit", tmp_path / "cache", bin_dir=bin_dir, ready_timeout_s=10)
    with pytest.raises(ComponentError, match="taken meanwhile") as info:
        cluster.up()
    assert info.value.port_conflict
    runs = cluster.layout.log("etcd").read_text().count("==> ")
    assert runs == 3
