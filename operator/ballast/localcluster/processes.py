"""Detached processes on loopback ports: spawn, probe, stop, and the small helpers around them.

Each component runs in its own session (``start_new_session``), so it
outlives the Python process that started it (``ballast cluster up`` returns
and the cluster keeps running) and can be stopped as a whole process group.
A process is identified by its pid *and* its start time from
``/proc/<pid>/stat``, so that a recycled pid is never mistaken for, or
killed as, a component.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class ProcessRef:
    """A started process: its pid and its kernel start time (clock ticks since boot)."""

    pid: int
    start_time: int


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name, or None when gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: split after the last ')'.
    return raw[raw.rfind(")") + 2 :].split()


def start_time(pid: int) -> int:
    """The start time of ``pid`` (0 when unknown, e.g. without /proc)."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else 0


def _reap(pid: int) -> None:
    """Collect the exit status of our own dead child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def is_alive(ref: ProcessRef) -> bool:
    """True while the process runs (a zombie or a recycled pid counts as gone)."""
    fields = _stat_fields(ref.pid)
    if fields is None:
        if Path("/proc/self/stat").exists():
            return False
        try:  # No /proc (not Linux): fall back to signal 0.
            os.kill(ref.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    if fields[0] == "Z":
        _reap(ref.pid)
        return False
    return ref.start_time == 0 or int(fields[19]) == ref.start_time


def spawn(
    argv: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ProcessRef:
    """Start ``argv`` detached, in a new session, with stdout and stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        out.write(f"==> {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
    return ProcessRef(proc.pid, start_time(proc.pid))


def _signal_group(ref: ProcessRef, sig: signal.Signals) -> None:
    try:
        os.killpg(ref.pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        # Not a group leader we own any more; signal the process alone.
        with contextlib.suppress(ProcessLookupError):
            os.kill(ref.pid, sig)


def stop(ref: ProcessRef, grace_s: float = 10.0) -> bool:
    """SIGTERM the process group, SIGKILL it after ``grace_s``; True if it had to be killed."""
    if not is_alive(ref):
        return False
    _signal_group(ref, signal.SIGTERM)
    if wait_until(lambda: not is_alive(ref), grace_s, 0.1):
        _signal_group(ref, signal.SIGKILL)  # stray children of the group, if any
        return False
    _signal_group(ref, signal.SIGKILL)
    wait_until(lambda: not is_alive(ref), 5.0, 0.1)
    return True


def wait_until(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.5) -> bool:
    """Poll ``condition`` until it is true (True) or ``timeout_s`` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True when ``host:port`` cannot be bound (another process listens there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def free_ports(count: int, host: str = LOOPBACK, exclude: Sequence[int] = ()) -> list[int]:
    """``count`` distinct ports the kernel reports free right now (bound together, then closed)."""
    sockets: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(s)
            s.bind((host, 0))
            port = int(s.getsockname()[1])
            if port not in exclude:
                ports.append(port)
    finally:
        for s in sockets:
            s.close()
    return ports


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a text file ('' when it does not exist)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            data = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])
