"""Leadership is fenced, proved with a real network fault between the leader and the API server.

Replica A reaches the API server only through a TCP proxy this test controls;
replica B connects directly. In the middle of a burst the proxy stalls A's
traffic (connections stay open, no byte moves): A's renewals hang, so A must
stop acting within its renew deadline; B must take over once the lease has
gone unchanged for a lease duration by B's own clock, and bind the rest.
Then the stall ends and whatever A had on the wire arrives late. From the
API server's side: every pod bound exactly once (a watch records every
change of every pod), no GPU index of a node handed to two pods.
"""

from __future__ import annotations

import contextlib
import queue
import re
import socket
import threading
import time
import urllib.parse
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kutil import wait_for
from sutil import gpu_node, gpu_pod, wait_ready
from tcpproxy import TcpProxy

from ballast.kube.raw import PODS, Kube
from ballast.localcluster.ballast_procs import BallastProcess
from ballast.scheduler.actions import Actions
from ballast.scheduler.informer import Event
from ballast.scheduler.ratelimit import TokenBucket

GPU_IDS = "ballast.dev/gpu-ids"
LEASE_S, RENEW_DEADLINE_S, RETRY_S = 6, 3.0, 0.5
TIMING_ARGS = [
    "--leader-elect-lease-duration", str(LEASE_S),
    "--leader-elect-renew-deadline", str(RENEW_DEADLINE_S),
    "--leader-elect-retry-period", str(RETRY_S),
    "--api-write-timeout", "2",
]  # fmt: skip


def write_kubeconfig(kubeconfig: Path, dest: Path, port: int) -> None:
    doc = yaml.safe_load(kubeconfig.read_text())
    for c in doc["clusters"]:
        # Same host (the certificate names it), the proxy's port.
        c["cluster"]["server"] = f"https://127.0.0.1:{port}"
    dest.write_text(yaml.safe_dump(doc))
    dest.chmod(0o600)


class PodHistory:
    """Every (nodeName, gpu-ids) a pod of the namespace has shown, from one watch."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.path = PODS.path(namespace=namespace)
        self.seen: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self.rv = kube.list(self.path)["metadata"]["resourceVersion"]
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for kind, obj in self.kube.watch(self.path, resource_version=self.rv, timeout_seconds=120):
            if kind not in ("ADDED", "MODIFIED"):
                continue
            meta = obj["metadata"]
            state = (
                (obj.get("spec") or {}).get("nodeName") or "",
                (meta.get("annotations") or {}).get(GPU_IDS, ""),
            )
            states = self.seen[meta["name"]]
            if not states or states[-1] != state:
                states.append(state)


class LogWatch:
    """Polls two logs and notes, on the test's clock, when a line first appears."""

    def __init__(self, procs: dict[str, BallastProcess]) -> None:
        self.procs = procs
        self.first: dict[tuple[str, str], float] = {}
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, proc in self.procs.items():
                text = proc.log_path.read_text(errors="replace") if proc.log_path.exists() else ""
                for msg in ("became leader", "lost leadership", "write fenced"):
                    if msg in text:
                        self.first.setdefault((name, msg), time.monotonic())
            self._stop.wait(0.05)

    def at(self, name: str, msg: str) -> float | None:
        return self.first.get((name, msg))

    def stop(self) -> None:
        self._stop.set()


@pytest.fixture
def proxy(kubeconfig: Path) -> Iterator[TcpProxy]:
    doc = yaml.safe_load(kubeconfig.read_text())
    server = urllib.parse.urlsplit(doc["clusters"][0]["cluster"]["server"])
    assert server.hostname and server.port
    with TcpProxy((server.hostname, server.port)) as p:
        yield p


def scheduler(name: str, kubeconfig: Path, state: Path, lease: str, *extra: str) -> BallastProcess:
    return BallastProcess(
        name,
        [
            "scheduler",
            "--scheduler-name", "ballast-fence",
            "--leader-elect",
            "--lease-name", lease,
            "--identity", name,
            *TIMING_ARGS,
            *extra,
        ],
        kubeconfig,
        state,
    )  # fmt: skip


def test_stalled_leader_stops_within_its_renew_deadline_and_nothing_is_bound_twice(
    crds: None,
    kubeconfig: Path,
    kube: Kube,
    namespace: str,
    tid: str,
    tmp_path: Path,
    proxy: TcpProxy,
) -> None:
    nodes, per_node, pods = 3, 8, 24
    for i in range(nodes):
        gpu_node(kube, f"fence-{tid}-{i}", test=tid, gpus=per_node)
    wait_ready(kube, tid, nodes)
    via_proxy = tmp_path / "kubeconfig-proxied"
    write_kubeconfig(kubeconfig, via_proxy, proxy.port)
    lease = f"fence-{uuid.uuid4().hex[:8]}"
    # A writes slowly (a small client budget), so that binds are still queued
    # when its lease lapses: those must be dropped, never sent.
    a = scheduler("fence-a", via_proxy, tmp_path, lease,
                  "--kube-api-qps", "3", "--kube-api-burst", "1", "--workers", "2")  # fmt: skip
    b = scheduler("fence-b", kubeconfig, tmp_path, lease, "--kube-api-qps", "0")
    logs = LogWatch({"a": a, "b": b})
    history = PodHistory(kube, namespace)
    history.thread.start()
    logs.thread.start()
    a.start()
    try:
        wait_for(lambda: logs.at("a", "became leader"), timeout=30, what="A leads",
                 explain=lambda: a.log_tail(20))  # fmt: skip
        b.start()
        time.sleep(2.0)  # B lists and watches: a warm standby
        assert logs.at("b", "became leader") is None
        names = [f"burst-{i}" for i in range(pods)]
        for n in names:
            gpu_pod(kube, namespace, n, test=tid, scheduler="ballast-fence")

        def bound() -> list[str]:
            return [n for n in names if history.seen.get(n) and history.seen[n][-1][0]]

        wait_for(lambda: len(bound()) >= 3, timeout=60, what="A binds part of the burst",
                 explain=lambda: a.log_tail(20))  # fmt: skip
        proxy.stall()
        stalled_at = time.monotonic()
        bound_by_a = set(bound())
        assert len(bound_by_a) < pods, "A bound the whole burst before the stall"

        lost_at = wait_for(lambda: logs.at("a", "lost leadership"), timeout=15,
                           what="A gives up leadership", explain=lambda: a.log_tail(30))  # fmt: skip
        took_at = wait_for(lambda: logs.at("b", "became leader"), timeout=30,
                           what="B takes over", explain=lambda: b.log_tail(30))  # fmt: skip
        # A's last good renewal was at most a retry period before the stall.
        assert lost_at - stalled_at <= RENEW_DEADLINE_S + 1.0, lost_at - stalled_at
        since = re.search(r"lost leadership.* since_renew=([0-9.]+)", a.log_tail(400))
        assert since and float(since.group(1)) <= RENEW_DEADLINE_S + 1.0, since
        # B waited a lease duration from A's last renewal, so A had stopped first.
        assert took_at > lost_at + 1.0, (took_at - stalled_at, lost_at - stalled_at)
        # Writes A had queued when its claim ended were dropped, not sent.
        assert logs.at("a", "write fenced") is not None, a.log_tail(60)

        wait_for(lambda: len(bound()) == pods, timeout=40, what="B binds the rest",
                 explain=lambda: b.log_tail(30))  # fmt: skip
        # Let whatever A left on the wire arrive now, late.
        proxy.resume()
        time.sleep(3.0)
    finally:
        logs.stop()
        a.stop(5)
        b.stop(5)

    final = {n: kube.get(PODS.path(n, namespace)) or {} for n in names}
    per_gpu: Counter[tuple[str, str]] = Counter()
    for n, pod in final.items():
        node = pod["spec"].get("nodeName")
        ids = (pod["metadata"].get("annotations") or {}).get(GPU_IDS, "")
        assert node and ids, f"{n}: node={node!r} gpu-ids={ids!r}"
        # Bound exactly once: one transition from pending to (node, ids), then no change.
        states = [s for s in history.seen[n] if s[0]]
        assert states == [(node, ids)], f"{n} changed after binding: {history.seen[n]}"
        for g in ids.split(","):
            per_gpu[(node, g)] += 1
    doubles = {k: v for k, v in per_gpu.items() if v > 1}
    assert not doubles, f"GPU indexes handed to two pods: {doubles}"
    assert bound_by_a and set(names) - bound_by_a, "both replicas should have bound some pods"


def test_the_proxy_stalls_holds_and_then_delivers_bytes() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    echo_port = server.getsockname()[1]

    def echo() -> None:
        conn, _ = server.accept()
        with conn, contextlib.suppress(ConnectionResetError):  # cut() resets it
            while data := conn.recv(1024):
                conn.sendall(data)

    threading.Thread(target=echo, daemon=True).start()
    with (
        TcpProxy(("127.0.0.1", echo_port)) as p,
        socket.create_connection(("127.0.0.1", p.port)) as c,
    ):
        c.settimeout(2)
        c.sendall(b"one")
        assert c.recv(16) == b"one"
        p.stall()
        time.sleep(0.1)
        c.sendall(b"two")
        c.settimeout(0.5)
        with pytest.raises(TimeoutError):
            c.recv(16)
        p.resume()
        c.settimeout(2)
        assert c.recv(16) == b"two"
        p.cut()
        time.sleep(0.2)
        c.settimeout(2)
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            c.sendall(b"three")
            if c.recv(16) == b"":
                raise ConnectionResetError
    server.close()


def test_api_write_errors_on_a_real_server(
    crds: None, kube: Kube, namespace: str, tid: str
) -> None:
    """A 422 is reported once as permanent; a conflict is not; a missing object is no error."""
    out: queue.Queue[Event] = queue.Queue()
    actions = Actions(kube, out, bucket=TokenBucket(0, 1), workers=2)
    quota = f"fence-{tid}"
    path = f"/apis/ballast.dev/v1alpha1/gpuquotas/{quota}"
    kube.create(
        "/apis/ballast.dev/v1alpha1/gpuquotas",
        {
            "apiVersion": "ballast.dev/v1alpha1",
            "kind": "GPUQuota",
            "metadata": {"name": quota},
            "spec": {"namespaces": [namespace], "gpus": 1},
        },
    )
    try:
        gpu_node(kube, f"fence-{tid}-w", test=tid, gpus=1)
        pod = gpu_pod(kube, namespace, "w", test=tid, scheduler="ballast-none")
        actions.patch_status(f"{path}/status", {"observedGeneration": "not a number"})
        actions.patch_status(f"{path}-gone/status", {"observedGeneration": 1})
        stale = {"metadata": {**pod["metadata"], "uid": str(uuid.uuid4())}}
        actions.bind(stale, f"fence-{tid}-w", {GPU_IDS: "0"})  # another incarnation's uid
        results = [out.get(timeout=20) for _ in range(2)]
        actions.shutdown()
        by_type = {ev.type: ev.obj for ev in results}
        assert by_type["status"]["permanent"] is True and by_type["status"]["status"] == 422
        assert by_type["status"]["attempts"] == 1
        assert by_type["bind"]["status"] == 409 and by_type["bind"]["permanent"] is False
        assert out.empty(), list(out.queue)  # the missing object is dropped silently
        assert not (kube.get(PODS.path("w", namespace)) or {}).get("spec", {}).get("nodeName")
    finally:
        kube.delete(path)
