"""What the operator's own loops share: peering, paged LISTs, one task per loop.

The safety-net resync (``resync.py``), the SLO reading (``slo.py``) and the
GPUQuota resync (``gpuquota.py``) are each one task for the whole operator,
not a kopf timer per object: a timer costs kopf a task and a held copy of the
object per object, and makes kopf put its finalizer on every object it runs
for, so that deleting one would wait for the operator. A loop is started from
the first event of its kind, inside kopf's handler context (so that the
events it posts go through kopf's poster), and cancelled on cleanup.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Mapping
from typing import Any

import kopf

from ballast.controller import resync as logic
from ballast.controller.settings import CLUSTER_PEERINGS
from ballast.kube.raw import TRANSPORT_ERRORS, Kube, KubeError, Resource
from ballast.logs import kv

log = logging.getLogger(__name__)
ERRORS: tuple[type[Exception], ...] = (KubeError, *TRANSPORT_ERRORS)
PAGE = 500  # objects per LIST page: memory stays flat at thousands of objects
_tasks: dict[str, asyncio.Task[None]] = {}


def paused(memo: Any) -> bool:
    """Whether a peer of higher priority pauses this replica (kopf's rule; blocking: one GET)."""
    settings = getattr(memo, "settings", None)
    if settings is None or settings.peering.standalone:
        return False
    peering = memo.kube.get(CLUSTER_PEERINGS.path(settings.peering.name))
    return logic.peering_paused(peering, settings.peering.priority, memo.clock.now())


def pages(kube: Kube, resource: Resource, page: int = PAGE) -> Iterator[list[dict[str, Any]]]:
    """The cluster-scoped ``resource``'s objects, one LIST page at a time (blocking)."""
    token: str | None = None
    while True:
        query: dict[str, Any] = {"limit": page}
        if token:
            query["continue"] = token
        found = kube.list(resource.path(), **query)
        yield found.get("items") or []
        token = (found.get("metadata") or {}).get("continue")
        if not token:
            return


async def listed(kube: Kube, resource: Resource) -> AsyncIterator[list[dict[str, Any]]]:
    """:func:`pages`, each page fetched on a worker thread."""
    it = pages(kube, resource)
    while (items := await asyncio.to_thread(next, it, None)) is not None:
        yield items


def indexes_of(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """kopf's indexes among a handler's kwargs: live mappings a loop may keep."""
    return {k: v for k, v in kwargs.items() if isinstance(v, kopf.Index)}


def jittered(seconds: float) -> Iterator[float]:
    """``seconds`` give or take 10 %, forever, so that replicas and restarts do not pass in step."""
    while True:
        yield seconds * random.uniform(0.9, 1.1)


async def repeat(
    what: str, delays: Iterable[float], one_pass: Callable[[], Coroutine[Any, Any, object]]
) -> None:
    """Forever: sleep the next of ``delays``, then run one pass; a failed pass is logged."""
    for delay in delays:
        await asyncio.sleep(delay)
        try:
            await one_pass()
        except ERRORS as exc:
            log.warning("loop pass failed", extra=kv(loop=what, error=exc))
        except Exception:
            log.exception("loop pass failed", extra=kv(loop=what))


def start(name: str, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Start task ``name`` from ``loop()`` unless it runs already (call in the event loop)."""
    task = _tasks.get(name)
    if task is not None and not task.done():
        return
    _tasks[name] = asyncio.create_task(loop(), name=f"ballast-{name}")


@kopf.on.cleanup()
async def stop_loops(**_: Any) -> None:
    """Stop every loop with the operator."""
    for task in _tasks.values():
        task.cancel()
    _tasks.clear()
