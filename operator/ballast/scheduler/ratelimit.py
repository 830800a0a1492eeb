"""A token bucket shared by every API writer of one process (client QPS and burst)."""

from __future__ import annotations

import threading
import time


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
