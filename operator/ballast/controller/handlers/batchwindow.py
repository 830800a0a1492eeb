"""BatchWindow handlers: a daemon per window keeps its status true at every edge."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from ballast.api.wellknown import GROUP, VERSION
from ballast.controller import batchwindow as logic
from ballast.controller import workloadclass as wlc
from ballast.controller.builders import priority_class_name
from ballast.controller.events import post
from ballast.kube.raw import BATCHWINDOWS
from ballast.logs import kv

BW = (GROUP, VERSION, "batchwindows")
log = logging.getLogger(__name__)


@kopf.index(*BW)
def batchwindow_index(name: str, status: kopf.Status, **_: Any) -> dict[str, Any]:
    """name → whether it is open (WorkloadClasses check that their window exists)."""
    return {name: bool(status.get("open"))}


@kopf.on.event(*BW)
def batchwindow_dependents(type: str, name: str, memo: Any, **kwargs: Any) -> None:
    """When a window appears or disappears, re-check the classes that name it."""
    if type not in ("ADDED", "DELETED", None):
        return
    index: kopf.Index[str, Any] = kwargs["workloadclass_index"]
    for class_name, entries in index.items():
        for entry in entries:
            if entry["spec"].get("window") == name and not entry["deleting"]:
                wlc.reconcile_from_api(
                    memo.kube,
                    class_name,
                    actual_pc=_pc(kwargs, class_name),
                    window_exists=type != "DELETED",
                    now=memo.clock.now(),
                )


def _pc(kwargs: dict[str, Any], class_name: str) -> dict[str, Any] | None:
    pcs: Any = kwargs["priorityclass_index"].get(priority_class_name(class_name), [])
    return next(iter(pcs), None)


@kopf.daemon(*BW, cancellation_timeout=5)
async def batchwindow_daemon(
    name: str,
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    memo: Any,
    stopped: kopf.DaemonStopped,
    **_: Any,
) -> None:
    """Evaluate the window, write status when it changes, sleep until the next edge.

    ``spec``/``status`` are live views kopf keeps current, so edits are seen
    on the next tick without restarting the daemon.
    """
    last_written: dict[str, Any] | None = None
    while not stopped:
        result = logic.tick(dict(spec), dict(status), meta.get("generation"), memo.clock.now())
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
        await stopped.wait(result.sleep_seconds)
