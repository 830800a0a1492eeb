"""Client-side pacing of API writes: one token bucket per process, and retry backoff."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass


class TokenBucket:
    """``qps`` tokens per second, at most ``burst`` saved; ``take`` blocks until one is free.

    The same limits as client-go's ``--kube-api-qps``/``--kube-api-burst`` so
    that a benchmark can give Ballast and kube-scheduler the same client budget.
    ``qps <= 0`` disables limiting.
    """

    def __init__(self, qps: float, burst: int) -> None:
        self.qps = qps
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> None:
        """Consume one token, sleeping as long as needed."""
        if self.qps <= 0:
            return
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.qps)
            self._last = now
            self._tokens -= 1.0
            wait = -self._tokens / self.qps if self._tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter, as client-go's ``wait.Backoff``.

    Attempt ``n`` (1-based) waits ``min(cap_s, base_s * factor**(n-1))``
    scaled by a random factor in ``[1 - jitter, 1]`` (jitter 0.5: "equal
    jitter"), so replicas and pods that failed together do not retry in step.
    ``attempts`` bounds the tries (``0``: unbounded).
    """

    base_s: float = 0.2
    factor: float = 2.0
    cap_s: float = 10.0
    jitter: float = 0.5
    attempts: int = 5

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        raw = min(self.cap_s, self.base_s * self.factor ** max(0, attempt - 1))
        draw = (rng or random).random()
        return raw * (1.0 - self.jitter * draw)

    def exhausted(self, attempt: int) -> bool:
        """Whether ``attempt`` failed attempts use up the budget."""
        return self.attempts > 0 and attempt >= self.attempts
