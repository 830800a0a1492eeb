"""The write engine under :class:`~ballast.scheduler.actions.Actions`: fenced, backed off.
Binds, evictions, checkpoint requests, pod conditions, custom-resource status
and events run on thread pools behind one token bucket. Results that change
the scheduler's state come back as ``Event(RESULT, what, {...})`` on the
scheduler's queue, so the scheduling thread stays the only one that touches
its cache.

Three rules hold for every write:

- **Fenced.** A write carries the leadership term it was queued in. Right
  before its HTTP call (after the rate-limiter wait, and again before every
  retry) the term is checked against ``fence()``; a write whose term ended
  is dropped and reported with ``fenced: True``. A replica that lost the
  lease sends nothing it had queued.
- **Backed off.** A transient failure (5xx, 429, 408, a timeout, a broken
  connection) is retried after an exponential, jittered delay, on a timer,
  not on a worker thread. Binds, evictions and checkpoint requests give up
  after a bounded number of attempts and report; pod conditions and status
  writes are retried until they land (a newer write for the same object
  replaces a pending one, so a stale status never overwrites a fresh one).
- **Permanent errors are reported once.** A 4xx other than 409 (400, 403,
  422, ...) will fail the same way again: it is reported with
  ``permanent: True`` and the server's message, never retried.

Result fields (``Event.obj``) for ``what`` in ``bind``, ``evict``,
``checkpoint``, ``withdraw`` (checkpoint withdrawn), ``condition``, ``status``:

``uid``
    the pod's uid (``""`` for ``status``).
``ok``
    the write landed (or, for ``evict``, the pod is gone).
``status``
    the HTTP status of the last attempt (0: no answer; absent when ``ok``).
``error``
    the server's message or the transport error (absent when ``ok``).
``permanent``
    a 4xx other than 409: retrying cannot help; turn it into an event and a
    condition.
``fenced``
    dropped unsent because leadership was lost.
``refused``
    ``evict`` only: a 429 naming a PodDisruptionBudget; not retried here
    (the caller decides when to try again or re-plan).
``attempts``
    HTTP attempts made.
``retry_after``
    seconds the server asked to wait (429), when it said.

plus the kind's own fields: ``node`` (bind), ``preemptor`` (evict), ``path``
(status). ``bind`` and ``evict`` report success and failure; the others only
report a failure they give up on or a fenced drop.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import logging
import os
import queue
import random
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ballast.kube.raw import TRANSPORT_ERRORS, Kube, KubeError
from ballast.logs import kv
from ballast.scheduler.informer import Event
from ballast.scheduler.ratelimit import Backoff, TokenBucket

log = logging.getLogger(__name__)
RESULT = "_result"  # Event.kind for results of asynchronous writes
CONTROLLER = "ballast.dev/scheduler"

Fence = Callable[[], int | None]
"""The current leadership term, or None when this replica must not write."""

Later = Callable[[float, Callable[[], None]], None]
"""Run a callable after a delay in seconds (retries wait here)."""

# Binds, evictions, checkpoint requests: a few quick tries, then the caller decides.
WRITE_BACKOFF = Backoff(base_s=0.2, factor=2.0, cap_s=5.0, jitter=0.5, attempts=5)
# Conditions and status: until they land, at most every 30 s.
STATUS_BACKOFF = Backoff(base_s=0.5, factor=2.0, cap_s=30.0, jitter=0.5, attempts=0)
TRANSIENT_STATUSES = frozenset({408, 429})
API_ERRORS: tuple[type[Exception], ...] = (KubeError, *TRANSPORT_ERRORS)


def always_leading() -> int:
    """The fence of a scheduler without leader election: always term 0."""
    return 0


def _micro(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _retry_after(exc: KubeError) -> float | None:
    details = exc.body.get("details") if isinstance(exc.body, dict) else None
    seconds = (details or {}).get("retryAfterSeconds") if isinstance(details, dict) else None
    try:
        return float(seconds) if seconds else None
    except (TypeError, ValueError):
        return None


def _pdb_refusal(exc: KubeError) -> bool:
    """A 429 from the eviction subresource because of a PodDisruptionBudget."""
    if exc.status != 429:
        return False
    details = exc.body.get("details") if isinstance(exc.body, dict) else None
    causes = (details or {}).get("causes") if isinstance(details, dict) else None
    if any(isinstance(c, dict) and c.get("type") == "DisruptionBudget" for c in causes or ()):
        return True
    return "disruption budget" in exc.message.lower()


@dataclass(slots=True)
class _Write:
    """One queued write and its retry state."""

    what: str
    uid: str
    send: Callable[[], Any]
    term: int
    policy: Backoff
    extra: dict[str, Any]
    report_ok: bool
    key: str | None = None  # latest wins among writes with the same key
    seq: int = 0
    attempts: int = 0
    name: str = ""
    on_conflict: Callable[[], bool] | None = None  # a 409 that may mean "already done"
    fields: dict[str, Any] = field(default_factory=dict)
    bulk: bool = False  # runs on the bulk pool (see FencedWriter)


class Timers:
    """One thread that runs callbacks after a delay (retries wait here, not on a worker)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cv = threading.Condition()
        self._seq = itertools.count()
        self._closed = False
        self._thread: threading.Thread | None = None

    def __call__(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the timer thread after ``delay`` seconds."""
        with self._cv:
            if self._closed:
                return
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), fn))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="api-retry", daemon=True)
                self._thread.start()
            self._cv.notify()

    def close(self) -> int:
        """Stop; returns how many callbacks were still waiting (they never run)."""
        with self._cv:
            self._closed = True
            pending = len(self._heap)
            self._heap.clear()
            self._cv.notify()
        return pending

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._closed and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._cv.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                if self._closed:
                    return
                _, _, fn = heapq.heappop(self._heap)
            try:
                fn()
            except Exception:
                log.exception("delayed API write failed to start")


class FencedWriter:
    """Runs writes on thread pools: one rate limit, fencing, backoff, results reported."""

    def __init__(
        self,
        kube: Kube,
        out: queue.Queue[Event],
        *,
        bucket: TokenBucket,
        workers: int = 16,
        scheduler_name: str = "ballast",
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        fence: Fence = always_leading,
        backoff: Backoff = WRITE_BACKOFF,
        status_backoff: Backoff = STATUS_BACKOFF,
        timeout_s: float = 2.5,
        later: Later | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.kube = kube
        self.out = out
        self.bucket = bucket
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="api")
        # Pod conditions without a nomination and custom-resource status are bulk
        # writes with their own pool: thousands of them queued at once (a burst
        # parked as the cluster fills) must never hold up a bind, an eviction or
        # a preemptor's nomination queued after them.
        self.bulk_pool = ThreadPoolExecutor(max(1, workers // 4), thread_name_prefix="api-bulk")
        # Events are best effort and must never delay a bind: their own small pool.
        self.event_pool = ThreadPoolExecutor(2, thread_name_prefix="events")
        self.event_backlog = 0
        self.max_event_backlog = 5000
        self.instance = f"{scheduler_name}-{socket.gethostname()}-{os.getpid()}"
        self.now = now
        self.fence = fence
        self.backoff = backoff
        self.status_backoff = status_backoff
        self.timeout_s = timeout_s
        timers = Timers() if later is None else None
        self._timers = timers
        self.later: Later = later if later is not None else timers  # type: ignore[assignment]
        self.rng = rng or random.Random()
        self._lock = threading.Lock()
        self._latest: dict[str, int] = {}
        # One write per key on the wire at a time: two writes of the same pod's
        # condition sent by two threads may reach the server in either order, so a
        # newer one waits here until the one in flight is done.
        self._inflight: set[str] = set()
        self._deferred: dict[str, _Write] = {}
        # Keys superseded while a write of theirs was on the wire: that write's
        # refusal is moot (the pod is bound) and is neither retried nor reported.
        self._superseded: set[str] = set()
        self._seq = itertools.count(1)
        self.fenced = 0  # writes dropped because leadership was lost (tests, logs)

    def shutdown(self) -> None:
        """Finish queued writes (pending retries are dropped) and stop the pools."""
        dropped = self._timers.close() if self._timers is not None else 0
        if dropped:
            log.info("pending API retries dropped at shutdown", extra=kv(count=dropped))
        self.pool.shutdown(wait=True, cancel_futures=False)
        self.bulk_pool.shutdown(wait=True, cancel_futures=False)
        self.event_pool.shutdown(wait=False, cancel_futures=True)

    # -- the write engine ---------------------------------------------------------------------

    def _http(
        self, method: str, path: str, body: Any, content_type: str | None = None
    ) -> Callable[[], Any]:
        def send() -> Any:
            return self.kube.request(
                method,
                path,
                body=body,
                content_type=content_type,
                timeout=self.timeout_s,
                retries=False,
            )

        return send

    def _submit(self, w: _Write) -> None:
        term = self.fence()
        if term is None:
            self._drop_fenced(w)
            return
        w.term = term
        if w.key is not None:
            with self._lock:
                w.seq = next(self._seq)
                self._latest[w.key] = w.seq
        self._enqueue(w)

    def supersede(self, key: str) -> None:
        """Drop the writes of ``key`` not yet sent (one on the wire still lands).

        A bind supersedes its pod's pending conditions: a nomination sent after
        the binding would be refused (``nominatedNodeName`` may not be set on a
        bound pod), and a retried ``Unschedulable`` would say what is no longer true.
        A write already on the wire races the bind; if it is refused (the bind
        landed first: 422), the refusal is moot: logged at debug, neither
        retried nor reported.
        """
        with self._lock:
            self._latest.pop(key, None)
            if key in self._inflight:
                self._superseded.add(key)

    def _enqueue(self, w: _Write) -> None:
        try:
            (self.bulk_pool if w.bulk else self.pool).submit(self._run, w)
        except RuntimeError:  # the pool is shut down: the process is stopping
            log.debug("API write after shutdown", extra=kv(what=w.what, uid=w.uid))

    def _current(self, w: _Write) -> bool:
        if w.key is None:
            return True
        with self._lock:
            return self._latest.get(w.key) == w.seq

    def _finish(self, w: _Write) -> None:
        if w.key is not None:
            with self._lock:
                if self._latest.get(w.key) == w.seq:
                    del self._latest[w.key]

    def _run(self, w: _Write) -> None:
        key = w.key
        if key is not None:
            with self._lock:
                if key in self._inflight:
                    self._deferred[key] = w  # sent once the write in flight is done
                    return
                self._inflight.add(key)
        try:
            self._send(w)
        finally:
            if key is not None:
                with self._lock:
                    self._inflight.discard(key)
                    self._superseded.discard(key)
                    nxt = self._deferred.pop(key, None)
                if nxt is not None:
                    self._enqueue(nxt)

    def _send(self, w: _Write) -> None:
        if not self._current(w):
            return  # a newer write for the same object replaced this one
        # The fence is checked before the rate-limiter wait (no token spent on a
        # write that will not be sent) and again after it, right before sending.
        if self.fence() == w.term:
            self.bucket.take()
        if self.fence() != w.term:
            self._finish(w)
            self._drop_fenced(w)
            return
        w.attempts += 1
        try:
            w.send()
        except KubeError as exc:
            self._failed(w, exc.status, exc.message, exc)
            return
        except TRANSPORT_ERRORS as exc:
            self._failed(w, 0, f"{type(exc).__name__}: {exc}", None)
            return
        except Exception as exc:  # a bug must not lose the result: the caller waits for it
            log.exception("API write raised", extra=kv(what=w.what, uid=w.uid))
            self._failed(w, 0, repr(exc), None, permanent=True)
            return
        self._finish(w)
        if w.report_ok:
            self._report(w, True)

    def _failed(
        self,
        w: _Write,
        status: int,
        error: str,
        exc: KubeError | None,
        *,
        permanent: bool = False,
    ) -> None:
        if w.key is not None:
            with self._lock:
                moot = w.key in self._superseded
            if moot:
                log.debug(
                    "superseded write refused",
                    extra=kv(what=w.what, name=w.name, status=status, error=error),
                )
                return
        retry_after = _retry_after(exc) if exc is not None else None
        if retry_after is not None:
            w.fields["retry_after"] = retry_after
        if exc is not None and exc.not_found:
            self._finish(w)
            if w.what == "evict":
                self._report(w, True, status=404)  # already gone: what we wanted
            elif w.what == "bind":
                self._report(w, False, status=404, error=error)
            else:
                log.debug("write target gone", extra=kv(what=w.what, name=w.name))
            return
        if w.what == "evict" and exc is not None and _pdb_refusal(exc):
            self._finish(w)
            self._report(w, False, status=status, error=error, refused=True)
            return
        if exc is not None and exc.conflict and w.what in ("bind", "evict", "checkpoint", "taint"):
            self._finish(w)
            # A retried bind may have landed the first time: then it is done.
            if w.attempts > 1 and w.on_conflict is not None and w.on_conflict():
                self._report(w, True, verified=True)
            else:
                self._report(w, False, status=status, error=error)
            return
        transient = status == 0 or status >= 500 or status in TRANSIENT_STATUSES or status == 409
        if permanent or not transient:
            self._finish(w)
            log.warning(
                "API write refused",
                extra=kv(what=w.what, name=w.name, status=status, error=error),
            )
            self._report(w, False, status=status, error=error, permanent=True)
            return
        if w.policy.exhausted(w.attempts):
            self._finish(w)
            log.warning(
                "API write failed",
                extra=kv(what=w.what, name=w.name, status=status, error=error, attempts=w.attempts),
            )
            self._report(w, False, status=status, error=error)
            return
        delay = max(w.policy.delay(w.attempts, self.rng), retry_after or 0.0)
        log.info(
            "API write retry",
            extra=kv(
                what=w.what,
                name=w.name,
                status=status,
                error=error,
                attempt=w.attempts,
                delay=f"{delay:.2f}",
            ),
        )
        self.later(delay, lambda: self._enqueue(w))

    def _drop_fenced(self, w: _Write) -> None:
        with self._lock:
            self.fenced += 1
        log.info("write fenced", extra=kv(what=w.what, name=w.name, uid=w.uid, term=w.term))
        self._report(w, False, status=0, error="not the leader", fenced=True)

    def _report(self, w: _Write, ok: bool, **fields: Any) -> None:
        if ok and not w.report_ok:
            return
        body = {
            "uid": w.uid,
            "ok": ok,
            **w.extra,
            "attempts": w.attempts,
            "permanent": False,
            "fenced": False,
            **w.fields,
            **fields,
        }
        self.out.put(Event(RESULT, w.what, body))
