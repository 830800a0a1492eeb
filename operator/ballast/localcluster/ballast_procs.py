"""Ballast's own processes (operator, scheduler) running beside a local cluster.

Each is a child process in its own session, logging to a file in the
cluster's state folder and recording its pid there, so that ``ballast
cluster down`` stops it with the control plane even when the process that
started it (``make demo``) has exited.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

PID_SUFFIX = ".ballast.pid"


class BallastProcess:
    """``python -m ballast <args>`` bound to one kubeconfig; restartable and killable."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        kubeconfig: Path,
        state_dir: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.args = list(args)
        self.kubeconfig = kubeconfig
        self.state_dir = state_dir
        self.env = dict(env or {})
        self.log_path = state_dir / "logs" / f"{name}.log"
        self.pid_path = state_dir / f"{name}{PID_SUFFIX}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it (stopping an earlier instance recorded under the same name)."""
        stop_pid_file(self.pid_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env, "KUBECONFIG": str(self.kubeconfig)}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ballast", *self.args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_path.write_text(str(self.proc.pid))

    @property
    def pid(self) -> int | None:
        """The running child's pid."""
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would end it: no cleanup runs."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, wait, then SIGKILL; forget the pid file."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.pid_path.unlink(missing_ok=True)

    def rss_mb(self, field: str = "VmRSS") -> float | None:
        """Resident memory of the process, in MiB (Linux /proc); ``VmHWM`` for the peak."""
        if not self.alive() or self.pid is None:
            return None
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
        return None

    def log_tail(self, lines: int = 40) -> str:
        """The end of its log, for error messages."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def stop_pid_file(pid_path: Path, timeout: float = 10.0) -> None:
    """Stop the process a pid file names (if it still runs) and remove the file."""
    try:
        pid = int(pid_path.read_text().strip())
    except (FileNotFoundError, ValueError):
        pid_path.unlink(missing_ok=True)
        return
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    pid_path.unlink(missing_ok=True)


def stop_all(state_dir: Path) -> list[str]:
    """Stop every Ballast process recorded in ``state_dir``; returns their names."""
    names = []
    for pid_path in sorted(state_dir.glob(f"*{PID_SUFFIX}")):
        names.append(pid_path.name.removesuffix(PID_SUFFIX))
        stop_pid_file(pid_path)
    return names
