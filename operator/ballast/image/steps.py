"""Run one long build command with its output in a log file and progress on stderr."""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ballast.localcluster.processes import tail
from ballast.logs import kv

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 30.0


class ImageError(Exception):
    """A step of the image build failed; the message says which and where its log is."""


def mmdebstrap_progress(line: str) -> str | None:
    """mmdebstrap's own ``I: ...`` steps and pip's summaries (the rest is left to the log)."""
    if line.startswith("I: "):
        return line[3:].strip()
    if line.startswith(("Installing collected packages", "Successfully installed")):
        return f"pip: {line.strip()[:160]}"  # pip's own summary lines, shortened
    return None


def run_logged(
    argv: Sequence[str],
    log_path: Path,
    what: str,
    progress: Callable[[str], str | None] = mmdebstrap_progress,
    cwd: Path | None = None,
) -> float:
    """Run ``argv`` appending its output to ``log_path``; returns the seconds it took.

    A line ``progress`` picks out is logged as a step; a "still <what>" line
    comes every :data:`PROGRESS_EVERY_S` otherwise. A failure raises
    :class:`ImageError` with the log's last lines.
    """
    started = time.monotonic()
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(PROGRESS_EVERY_S):
            log.info(f"still {what}", extra=kv(elapsed_s=round(time.monotonic() - started)))

    log.info(what, extra=kv(log=log_path))
    with log_path.open("a") as out:
        out.write(f"==> {what}: {' '.join(argv)}\n")
        out.flush()
        proc = subprocess.Popen(
            list(argv), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        beat = threading.Thread(target=heartbeat, name="image-progress", daemon=True)
        beat.start()
        try:
            for line in proc.stdout:
                out.write(line)
                out.flush()
                step = progress(line)
                if step:
                    log.info(
                        f"{what}: {step}", extra=kv(elapsed_s=round(time.monotonic() - started))
                    )
            rc = proc.wait()
        finally:
            done.set()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    seconds = time.monotonic() - started
    if rc != 0:
        raise ImageError(
            f"{what} failed (exit status {rc}); full log: {log_path}\n"
            f"--- last lines of {log_path.name} ---\n{tail(log_path)}"
        )
    return seconds
