"""Where a local cluster keeps its files, and the ``state.json`` that records its processes.

Layout of ``<cache>/clusters/<name>/``::

    state.json     ports, pids (with start times), paths: written after every spawn
    kubeconfig     admin kubeconfig with the client certificate embedded
    pki/           CA, API server serving cert, admin cert, service-account keys
    logs/          one log per component (kept after ``down`` for troubleshooting)
    kwok.yaml      kwok's configuration
    kube-scheduler-config.yaml   only when the scheduler runs with a config
    prometheus/    only with ``up --prometheus``: its config, target files and TSDB
    keda/certs/    only with ``up --keda``: KEDA's certificate (keda.py)
    lock           flock held while ``up``/``down`` change the cluster

etcd's data lives in a temporary folder (recorded in ``state.json``) and is
removed by ``down``.
"""

from __future__ import annotations

import base64
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from ballast.localcluster.processes import ProcessRef

# Start order; ``down`` stops in reverse.
COMPONENTS: tuple[str, ...] = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kwok",
    "kube-scheduler",
    "prometheus",
    "keda-operator",
    "keda-adapter",
)
CORE: tuple[str, ...] = COMPONENTS[:4]  # the scheduler, Prometheus and KEDA are optional


@dataclass(frozen=True, slots=True)
class Layout:
    """The paths of one cluster's state folder."""

    root: Path

    @property
    def state_file(self) -> Path:
        """``state.json``."""
        return self.root / "state.json"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig."""
        return self.root / "kubeconfig"

    @property
    def pki_dir(self) -> Path:
        """Certificates and keys."""
        return self.root / "pki"

    @property
    def logs_dir(self) -> Path:
        """Component logs."""
        return self.root / "logs"

    @property
    def lock_file(self) -> Path:
        """The file locked while the cluster is being changed."""
        return self.root / "lock"

    @property
    def kwok_config(self) -> Path:
        """kwok's configuration file."""
        return self.root / "kwok.yaml"

    @property
    def scheduler_config(self) -> Path:
        """The kube-scheduler configuration written by ``start_scheduler(config=...)``."""
        return self.root / "kube-scheduler-config.yaml"

    def log(self, component: str) -> Path:
        """The log file of ``component``."""
        return self.logs_dir / f"{component}.log"


@dataclass(slots=True)
class ComponentState:
    """One running component: its process, its port and its command line."""

    pid: int
    start_time: int
    port: int
    argv: list[str]

    @property
    def process(self) -> ProcessRef:
        """The process reference used to probe and stop it."""
        return ProcessRef(self.pid, self.start_time)


@dataclass(slots=True)
class ClusterState:
    """What ``state.json`` holds."""

    name: str
    bin_dir: str
    kubeconfig: str
    etcd_data_dir: str
    ports: dict[str, int]
    components: dict[str, ComponentState] = field(default_factory=dict)
    # The host end of the veth pair where KEDA's metrics API server listens (netns.py).
    keda_address: str | None = None

    @property
    def api_port(self) -> int:
        """The API server's secure port."""
        return self.ports["kube-apiserver"]

    @property
    def server(self) -> str:
        """The API server URL."""
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def prometheus_url(self) -> str | None:
        """Prometheus' URL while it is part of the cluster, else None."""
        if "prometheus" not in self.components:
            return None
        return f"http://127.0.0.1:{self.ports['prometheus']}"

    def to_json(self) -> bytes:
        """Serialise for ``state.json``."""
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, raw: bytes) -> ClusterState:
        """Parse ``state.json`` (raises ValueError/KeyError/TypeError when malformed)."""
        doc: dict[str, Any] = orjson.loads(raw)
        comps = {k: ComponentState(**v) for k, v in doc.pop("components", {}).items()}
        return cls(**doc, components=comps)


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    """One component as ``status`` sees it."""

    name: str
    pid: int | None
    port: int | None
    alive: bool
    ready: bool
    log: Path


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """The whole cluster as ``status`` sees it."""

    name: str
    kubeconfig: Path | None
    server: str | None
    components: list[ComponentStatus] = field(default_factory=list)
    prometheus_url: str | None = None

    @property
    def running(self) -> bool:
        """True when every core component is alive and the API server is ready."""
        by_name = {c.name: c for c in self.components}
        return (
            all(n in by_name and by_name[n].alive for n in CORE) and by_name["kube-apiserver"].ready
        )


def save_state(layout: Layout, state: ClusterState) -> None:
    """Write ``state.json`` atomically (write a temp file, then rename)."""
    tmp = layout.state_file.with_suffix(".tmp")
    tmp.write_bytes(state.to_json())
    os.replace(tmp, layout.state_file)


def load_state(layout: Layout) -> ClusterState | None:
    """Read ``state.json``; None when absent or unreadable."""
    try:
        return ClusterState.from_json(layout.state_file.read_bytes())
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_kubeconfig(
    path: Path, name: str, server: str, ca: bytes, cert: bytes, key: bytes
) -> None:
    """Write an admin kubeconfig for ``server`` with the CA and client cert embedded (mode 0600)."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    context = f"ballast-{name}"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": context,
                "cluster": {"server": server, "certificate-authority-data": b64(ca)},
            }
        ],
        "users": [
            {
                "name": f"{context}-admin",
                "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)},
            }
        ],
        "contexts": [
            {"name": context, "context": {"cluster": context, "user": f"{context}-admin"}}
        ],
        "current-context": context,
        "preferences": {},
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
