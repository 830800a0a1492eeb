"""Small helpers for operator integration tests (waiting, kubectl, CR access)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ballast.kube.raw import Kube, Resource

SLO_RULES_NAMESPACE = "ballast-slo-rules"  # where the session operator writes SLO rules


T = TypeVar("T")


def wait_for(
    fn: Callable[[], T | None],
    *,
    timeout: float = 30.0,
    interval: float = 0.25,
    what: str = "",
    explain: Callable[[], str] | None = None,
) -> T:
    """Poll ``fn`` until it returns a truthy value; fail with ``what`` after ``timeout``.

    ``explain`` adds context to the failure (e.g. the scheduler's view of the nodes).
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    extra = f"\n{explain()}" if explain is not None else ""
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what or fn}; last={last!r}{extra}"
    )


def condition(obj: dict[str, Any] | None, type_: str = "Ready") -> dict[str, Any] | None:
    """The condition of ``type_`` on ``obj``, if any."""
    for c in ((obj or {}).get("status") or {}).get("conditions") or ():
        if c.get("type") == type_:
            return dict(c)
    return None


def ready(kube: Kube, res: Resource, name: str, status: str = "True") -> dict[str, Any] | None:
    """The object once its Ready condition has ``status`` for its current generation."""
    obj = kube.get(res.path(name))
    c = condition(obj)
    if (
        obj
        and c
        and c["status"] == status
        and c.get("observedGeneration") == obj["metadata"].get("generation")
    ):
        return obj
    return None


class Kubectl:
    """kubectl from the cached build, bound to one kubeconfig."""

    def __init__(self, binary: Path, kubeconfig: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig

    def __call__(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``kubectl args...``; raise with its output when ``check`` and it fails."""
        proc = subprocess.run(
            [str(self.binary), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc


def events_for(kube: Kube, name: str, kind: str) -> list[dict[str, Any]]:
    """core/v1 events about a cluster-scoped object (they live in ``default``)."""
    items = kube.list(
        "/api/v1/namespaces/default/events",
        fieldSelector=f"involvedObject.name={name},involvedObject.kind={kind}",
    )["items"]
    return list(items)
