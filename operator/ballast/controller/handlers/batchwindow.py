"""BatchWindow handlers: a daemon per window keeps its status true at every edge."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from ballast.api.wellknown import GROUP, VERSION
from ballast.controller import batchwindow as logic
from ballast.controller.events import post
from ballast.controller.handlers import jobs
from ballast.controller.handlers.priorityclass import repair_with_backoff
from ballast.kube.raw import BATCHWINDOWS
from ballast.logs import kv

BW = (GROUP, VERSION, "batchwindows")
log = logging.getLogger(__name__)
# A job event wakes the window's daemon after this pause, so that a burst of
# events (a Job's status and its pods changing together) costs one sweep.
WAKE_DEBOUNCE_SECONDS = 0.2


@kopf.index(*BW)
async def batchwindow_index(name: str, status: kopf.Status, **_: Any) -> dict[str, Any]:
    """name → whether it is open (WorkloadClasses check that their window exists)."""
    return {name: bool(status.get("open"))}


@kopf.on.event(*BW)
async def batchwindow_dependents(type: str, name: str, memo: Any, **kwargs: Any) -> None:
    """When a window appears or disappears, re-check the classes that name it (with backoff)."""
    if type not in ("ADDED", "DELETED", None):
        return
    index: kopf.Index[str, Any] = kwargs["workloadclass_index"]
    dependents = [
        class_name
        for class_name, entries in index.items()
        for entry in entries
        if entry["spec"].get("window") == name and not entry["deleting"]
    ]
    await asyncio.gather(
        *(
            repair_with_backoff(memo, class_name, window_exists=type != "DELETED")
            for class_name in dependents
        )
    )


@kopf.daemon(*BW, cancellation_timeout=5)
async def batchwindow_daemon(
    name: str,
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    memo: Any,
    stopped: kopf.DaemonStopped,
    **kwargs: Any,
) -> None:
    """Evaluate the window, act on its classes' jobs, write status, sleep until the next edge.

    ``spec``/``status`` are live views kopf keeps current, so edits are seen
    on the next tick without restarting the daemon. A job event of one of
    the window's classes wakes the daemon early (``handlers/jobs.py``).
    """
    last_written: dict[str, Any] | None = None
    wake = jobs.waker(name)
    try:
        while not stopped:
            wake.clear()
            now = memo.clock.now()
            result = logic.tick(dict(spec), dict(status), meta.get("generation"), now)
            sleep = result.sleep_seconds
            try:
                plan = await jobs.sweep(name, spec, result.status.get("open"), memo, kwargs)
                result.status.update(plan.counts())
                if plan.wake_at is not None:
                    sleep = min(sleep, max(0.05, (plan.wake_at - now).total_seconds() + 0.05))
            except Exception as exc:  # never let the jobs stop the window's status
                log.warning("job sweep failed", extra=kv(batchwindow=name, error=exc))
            current = {k: status.get(k) for k in result.status}
            if result.status != current and result.status != last_written:
                try:
                    await asyncio.to_thread(
                        memo.kube.patch,
                        BATCHWINDOWS.path(name, sub="status"),
                        {"status": result.status},
                    )
                    last_written = result.status
                    # Events go with the write that records the transition, so a
                    # tick that runs before the watch catches up cannot repeat them.
                    for type_, reason, message in result.events:
                        post(body, type_, reason, message)
                except Exception as exc:  # transient API trouble: log and try next tick
                    log.warning("status patch failed", extra=kv(batchwindow=name, error=exc))
            elif result.status == current:
                last_written = None
            await _sleep(stopped, wake, sleep)
    finally:
        jobs.forget(name)


async def _sleep(stopped: kopf.DaemonStopped, wake: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less when the daemon is stopped or woken (debounced briefly)."""
    waiters = {
        asyncio.ensure_future(stopped.wait(seconds)),
        asyncio.ensure_future(wake.wait()),
    }
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
    if wake.is_set() and not stopped:
        # A burst of job events (a Job and its pods changing) becomes one sweep.
        await asyncio.sleep(WAKE_DEBOUNCE_SECONDS)
