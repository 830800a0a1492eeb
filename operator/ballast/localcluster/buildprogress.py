"""How far a build of the control-plane binaries has got, from what ``hack/build.sh`` prints.

``build.sh`` announces each component with ``==> building <component>``
and ``go`` prints ``go: downloading <module>`` per module it fetches; ``go
build`` itself is silent while it compiles. So progress is told as: the
component and its place among all of them, the modules downloaded, the
packages compiled so far (new output entries in the Go build cache, which
``go build`` writes one per compiled package), and, when an earlier build
left its per-component figures in its manifest, the share of that build's
time and packages reached.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

DEFAULT_COMPONENTS: tuple[str, ...] = ("etcd", "kwok", "helm", "k8s")


def go_cache_dir() -> Path | None:
    """``go env GOCACHE``, or None when go cannot say."""
    env = os.environ.get("GOCACHE")
    if env:
        return Path(env)
    try:
        out = subprocess.run(
            ["go", "env", "GOCACHE"], capture_output=True, text=True, check=False, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    path = out.stdout.strip()
    return Path(path) if out.returncode == 0 and path and path != "off" else None


def compiled_since(gocache: Path | None, since: float) -> int:
    """Output entries (``*-d``) written into the Go build cache since ``since`` (epoch s)."""
    if gocache is None:
        return 0
    n = 0
    try:
        subdirs = list(os.scandir(gocache))
    except OSError:
        return 0
    for sub in subdirs:
        if not sub.is_dir() or len(sub.name) != 2:
            continue
        try:
            with os.scandir(sub.path) as entries:
                for e in entries:
                    if e.name.endswith("-d") and e.stat().st_mtime >= since:
                        n += 1
        except OSError:
            continue
    return n


@dataclass(slots=True)
class BuildProgress:
    """Fed ``build.sh``'s output lines; says where the build is."""

    components: tuple[str, ...]
    previous: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    gocache: Path | None = None
    started: float = field(default_factory=time.monotonic)
    index: int = 0  # 1-based place of the current component; 0 before the first
    component: str = "starting"
    step_started: float = field(default_factory=time.monotonic)
    step_wall: float = field(default_factory=time.time)
    downloads: int = 0
    steps: dict[str, dict[str, float]] = field(default_factory=dict)

    def feed(self, line: str) -> str | None:
        """Take one output line; returns a message when a component starts."""
        if line.startswith("go: downloading "):
            self.downloads += 1
            return None
        if not line.startswith("==> building "):
            return None
        self._close_step()
        self.component = line.split()[2]
        self.index += 1
        self.step_started, self.step_wall = time.monotonic(), time.time()
        return f"building {self.component} ({self.index}/{max(self.index, len(self.components))})"

    def finish(self) -> dict[str, dict[str, float]]:
        """Close the last component; per component: seconds and packages compiled."""
        self._close_step()
        return self.steps

    def _close_step(self) -> None:
        if self.index:
            self.steps[self.component] = {
                "seconds": round(time.monotonic() - self.step_started, 1),
                "packages": compiled_since(self.gocache, self.step_wall),
            }

    def status(self) -> tuple[str, dict[str, Any]]:
        """The heartbeat: a message and its fields."""
        now = time.monotonic()
        step_s = now - self.step_started
        packages = compiled_since(self.gocache, self.step_wall)
        total = max(self.index, len(self.components))
        fields: dict[str, Any] = {
            "step": f"{self.index}/{total}",
            "step_s": round(step_s),
            "elapsed_s": round(now - self.started),
            "modules_downloaded": self.downloads,
            "packages_compiled": packages,
        }
        msg = f"still building {self.component} ({self.index}/{total}): {round(step_s)} s"
        msg += f", {packages} packages compiled, {self.downloads} modules downloaded"
        before = self.previous.get(self.component) or {}
        if before.get("packages"):
            pct = min(99, round(100 * packages / before["packages"]))
            fields["pct_of_last_build"] = pct
            msg += f", ~{pct}% of the last build's {int(before['packages'])} packages"
        elif before.get("seconds"):
            msg += f" of ~{round(before['seconds'])} s last time"
        return msg, fields


def previous_steps(cache: Path, manifest_name: str) -> dict[str, dict[str, float]]:
    """Per-component figures of the newest build whose manifest has them."""
    best: tuple[float, dict[str, dict[str, float]]] = (0.0, {})
    for path in (cache / "bin").glob(f"*/{manifest_name}"):
        try:
            doc = orjson.loads(path.read_bytes())
            mtime = path.stat().st_mtime
        except (OSError, ValueError):
            continue
        steps = doc.get("steps") if isinstance(doc, dict) else None
        if isinstance(steps, dict) and mtime > best[0]:
            best = (mtime, {str(k): dict(v) for k, v in steps.items() if isinstance(v, dict)})
    return best[1]
