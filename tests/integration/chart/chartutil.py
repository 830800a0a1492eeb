"""Helpers for the chart's tests: ServiceAccount credentials, the chart's own command lines, RBAC listings."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ballast.kube.raw import Kube

EXPECTED = Path(__file__).resolve().parent / "expected_permissions"
ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "ballast"

RELEASE = "ballast"
NAMESPACE = "ballast-system"  # enforces the `restricted` Pod Security Standard
AGENT_NAMESPACE = "ballast-agent"  # the agent's host paths need `privileged`
APPS = "chart-apps"  # the tenants' pods of the scenarios
AGENT_NODE = "chart-gpu-0"


@dataclass
class Release:
    """The installed release: where it is, the values it was given, the ports they name."""

    name: str
    namespace: str
    agent_namespace: str
    values_file: Path
    ports: dict[str, int]


class Helm:
    """helm from the cached build, bound to one kubeconfig, with its own config folders."""

    def __init__(self, binary: Path, kubeconfig: Path, home: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``helm args...``; raise with its output when ``check`` and it fails."""
        proc = subprocess.run(
            [str(self.binary), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=180,
            env=self.env,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def template(
        self, release: str, namespace: str, kube_version: str, *values: str
    ) -> list[dict[str, Any]]:
        """The objects ``helm template`` renders for Kubernetes ``kube_version``."""
        out = self(
            "template", release, str(CHART), "--namespace", namespace,
            "--kube-version", kube_version, *values,
        ).stdout  # fmt: skip
        return [d for d in yaml.safe_load_all(out) if d]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sa_kubeconfig(kube: Kube, admin_kubeconfig: Path, namespace: str, sa: str, out: Path) -> Path:
    """A kubeconfig holding a TokenRequest token of ServiceAccount ``namespace/sa`` (an hour)."""
    review = kube.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{sa}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
         "spec": {"expirationSeconds": 3600}},
    )  # fmt: skip
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "chart", "cluster": cluster}],
        "users": [{"name": sa, "user": {"token": review["status"]["token"]}}],
        "contexts": [{"name": sa, "context": {"cluster": "chart", "user": sa}}],
        "current-context": sa,
    }
    out.write_text(yaml.safe_dump(config))
    out.chmod(0o600)
    return out


def find(objects: Iterable[Mapping[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return dict(obj)
    raise AssertionError(f"{kind} {name} is not in the manifest")


def host_command(
    workload: Mapping[str, Any], fields: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The chart's container command line and environment, to run the same process on the host.

    ``fields`` answers the downward API (``metadata.namespace``, ``spec.nodeName`` ...);
    ``$(VAR)`` in the arguments is expanded as the kubelet does.
    """
    container = workload["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for var in container.get("env") or ():
        if "value" in var:
            env[var["name"]] = str(var["value"])
        else:
            env[var["name"]] = fields[var["valueFrom"]["fieldRef"]["fieldPath"]]
    args = [
        re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), a)
        for a in container["args"]
    ]
    return args, env


def parse_can_i(table: str) -> list[str]:
    """``kubectl auth can-i --list`` as sorted ``resource | non-resource URLs | names | verbs`` lines.

    Columns are cut where the header puts them, since cells may be empty.
    """
    lines = [line for line in table.splitlines() if line.strip()]
    header = lines[0]
    titles = ["Resources", "Non-Resource URLs", "Resource Names", "Verbs"]
    starts = [header.index(t) for t in titles]
    rows = []
    for line in lines[1:]:
        cells = [
            line[start : (starts[i + 1] if i + 1 < len(starts) else None)].strip()
            for i, start in enumerate(starts)
        ]
        rows.append(" | ".join(cells))
    return sorted(rows)
