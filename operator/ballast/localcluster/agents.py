"""Node agents for a local cluster's fake GPU nodes: the real agent over a fake NVML.

Each kwok node gets what a real GPU node runs as a DaemonSet pod: one
``ballast agent`` process, here loading the fake ``libnvidia-ml`` built by
:mod:`ballast.localcluster.fakegpu` and reading a fixture file of its own
(``<cluster>/agents/<node>.gpus``). The agent publishes the node's
``GPUNodeTelemetry`` record, which the scheduler reads, and serves
``/metrics`` on a loopback port that Prometheus (when the cluster runs one)
scrapes as job ``ballast-agent``. Changing a node's "hardware" — an XID, a
busy GPU, a GPU that falls off the bus — is a rewrite of its fixture
(:meth:`NodeAgents.fixture`).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ballast.localcluster import prometheus
from ballast.localcluster.ballast_procs import BallastProcess
from ballast.localcluster.fakegpu import ENV_FIXTURE, GPUFixture, build_fake_nvml
from ballast.localcluster.nodes import NodeSpec

JOB = "ballast-agent"


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(slots=True)
class Agent:
    """One node's agent: its process, its fixture and its /metrics port."""

    node: str
    process: BallastProcess
    fixture: GPUFixture
    port: int

    @property
    def metrics_url(self) -> str:
        """Where its /metrics are served."""
        return f"http://127.0.0.1:{self.port}/metrics"


class NodeAgents:
    """Starts, stops and reaches the agents of a local cluster's fake nodes."""

    def __init__(
        self,
        kubeconfig: Path,
        cluster_root: Path,
        *,
        interval_s: float = 5.0,
        heartbeat_s: float = 60.0,
        cache: Path | None = None,
        extra_args: Iterable[str] = (),
    ) -> None:
        self.kubeconfig = kubeconfig
        self.root = cluster_root
        self.interval_s = interval_s
        self.heartbeat_s = heartbeat_s
        self.extra_args = list(extra_args)
        self.library = build_fake_nvml(cache)
        self.agents: dict[str, Agent] = {}
        self.started: set[str] = set()  # every node given an agent, stopped or not

    def start(
        self,
        specs: Iterable[NodeSpec],
        readings: Mapping[str, Mapping[int, Mapping[str, object]]] | None = None,
    ) -> list[Agent]:
        """Start an agent for each node (replacing one already running for it)."""
        return [
            self.start_node(
                s.name, s.product, s.gpus, s.gpu_memory_mib, (readings or {}).get(s.name)
            )
            for s in specs
        ]

    def start_node(
        self,
        node: str,
        product: str,
        gpus: int,
        memory_mib: int,
        readings: Mapping[int, Mapping[str, object]] | None = None,
    ) -> Agent:
        """Start the agent of one node with idle, healthy fake GPUs (``readings`` per GPU)."""
        path = self.root / "agents" / f"{node}.gpus"
        fixture = GPUFixture.for_node(path, node, product, gpus, memory_mib, readings)
        return self._start(node, fixture)

    def _start(self, node: str, fixture: GPUFixture) -> Agent:
        old = self.agents.pop(node, None)
        if old is not None:
            old.process.stop()
        port = free_port()
        args = [
            "agent",
            "--nvml-library", str(self.library),
            "--node-name", node,
            "--hostname", node,
            "--publish-record",
            "--kubeconfig", str(self.kubeconfig),
            "--interval", f"{self.interval_s:g}",
            "--heartbeat", f"{self.heartbeat_s:g}",
            "--metrics-addr", "127.0.0.1",
            "--metrics-port", str(port),
            "--attribution", "ballast",
            *self.extra_args,
        ]  # fmt: skip
        proc = BallastProcess(
            f"agent-{node}", args, self.kubeconfig, self.root, env={ENV_FIXTURE: str(fixture.path)}
        )
        proc.start()
        prometheus.add_target(self.root, JOB, f"127.0.0.1:{port}", name=node,
                              labels={"node": node})  # fmt: skip
        agent = Agent(node, proc, fixture, port)
        self.agents[node] = agent
        self.started.add(node)
        return agent

    def fixture(self, node: str) -> GPUFixture:
        """The node's fake hardware, to change while its agent runs."""
        return self.agents[node].fixture

    def stop(self, node: str) -> None:
        """Stop one agent (its record goes stale; Prometheus stops scraping it)."""
        agent = self.agents.pop(node, None)
        if agent is not None:
            agent.process.stop()
            prometheus.remove_target(self.root, JOB, node)

    def restart(self, node: str, fixture: GPUFixture) -> Agent:
        """Start a stopped node's agent again over ``fixture``."""
        return self._start(node, fixture)

    def stop_all(self) -> None:
        """Stop every agent started here."""
        for node in list(self.agents):
            self.stop(node)
