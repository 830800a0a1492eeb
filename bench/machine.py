"""What every benchmark reports about the machine it ran on, and per-process accounting.

The benchmarks share their cores with other work, so each one prints the
machine's load during its run next to its figures (and in its JSON line):
the 1-minute load average sampled every second, its mean and maximum, and
the core count. A load near or above the core count means the figures are
slowed by neighbours; the two sides of a comparison are interleaved or
repeated so that such load cannot favour one side.

Process figures come from the process's own accounting in ``/proc``: CPU
seconds (``utime + stime`` of ``/proc/<pid>/stat``, in clock ticks) and peak
resident memory (``VmHWM`` of ``/proc/<pid>/status``).
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK")


class LoadSampler(threading.Thread):
    """The 1-minute load average, sampled every ``every`` seconds until ``summary()``.

    Use as a context manager or call ``start()`` and then ``summary()``.
    ``summary()`` may be called more than once (e.g. per side of a
    comparison); each call covers the samples since the start.
    """

    def __init__(self, every: float = 1.0) -> None:
        super().__init__(daemon=True, name="load-sampler")
        self.every = every
        self.samples: list[float] = [os.getloadavg()[0]]
        self.done = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.done.wait(self.every):
            with self.lock:
                self.samples.append(os.getloadavg()[0])

    def mark(self) -> int:
        """The index of the next sample (to summarise a part of the run with ``since``)."""
        with self.lock:
            self.samples.append(os.getloadavg()[0])
            return len(self.samples) - 1

    def summary(self, since: int = 0, stop: bool = False) -> dict[str, Any]:
        """``{"mean", "max", "cores", "samples"}`` of the samples from index ``since`` on."""
        with self.lock:
            self.samples.append(os.getloadavg()[0])
            s = self.samples[since:] or self.samples[-1:]
        if stop:
            self.done.set()
        return {
            "mean": round(sum(s) / len(s), 2),
            "max": round(max(s), 2),
            "cores": os.cpu_count() or 0,
            "samples": len(s),
        }

    def __enter__(self) -> LoadSampler:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.done.set()


def describe(load: dict[str, Any]) -> str:
    """``load average 1.23 mean, 2.50 max on 2 cores`` for the human-readable lines."""
    return f"load average {load['mean']:.2f} mean, {load['max']:.2f} max on {load['cores']} cores"


def report(load: dict[str, Any], out: Any = None) -> None:
    """Print the load line (to stderr unless told) just before a benchmark's JSON line."""
    print(f"machine: {describe(load)}", file=out or sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds the process has used (None when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: split after its closing parenthesis.
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14 and 15)


def status_mb(pid: int, field: str = "VmHWM") -> float | None:
    """A memory figure of ``/proc/<pid>/status`` in MiB (``VmHWM``: peak resident)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return None


def counter_by_label(url: str, metric: str, label: str) -> dict[str, float]:
    """A counter's samples by one label, from a Prometheus text endpoint; {} when unreachable.

    ``https`` endpoints on loopback (kube-scheduler's) are read without checking
    their self-signed certificate.
    """
    import ssl
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    ctx = ssl._create_unverified_context() if url.startswith("https") else None
    try:
        with urllib.request.urlopen(url, timeout=10, context=ctx) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == metric + "_total" or sample.name == metric:
                key = sample.labels.get(label, "")
                out[key] = out.get(key, 0.0) + sample.value
    return out
