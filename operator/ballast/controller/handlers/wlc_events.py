"""One kopf event handler for WorkloadClasses; it runs every part that follows class events.

Six parts watch every WorkloadClass event: the batch-window jobs
(``jobs.py``), the node-pool pass (``nodepools.py``), the SLO rules and the
SLO loop's start (``slo.py``), the resync loop's start (``resync.py``) and,
when scaling is on, the ScalingReady watch (``scaling.py``). Registered as
six kopf handlers they cost kopf six invocations per event (each with its
own context and its own "succeeded" log line): at 5,000 classes the
events that follow their status writes kept the operator busy for tens of
seconds after every class was Ready, and a spec change waited behind them.
Here they are one handler; each part still runs on every event, and one
part's failure is logged without skipping the others.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from ballast.controller.handlers import jobs, nodepools, resync, slo
from ballast.controller.handlers.workloadclass import WLC
from ballast.controller.scaling_sync import scaling_enabled
from ballast.logs import kv

log = logging.getLogger(__name__)

Part = Callable[..., Awaitable[None]]


def parts() -> list[Part]:
    """What runs on each class event, in order (read at each event: scaling may be off)."""
    out: list[Part] = [
        resync.workloadclass_resync_start,
        slo.workloadclass_slo_start,
        slo.workloadclass_slo_rules,
        nodepools.workloadclass_pool_watch,
        jobs.workloadclass_jobs,
    ]
    if scaling_enabled():  # the scaling handlers exist only then
        from ballast.controller.handlers import scaling

        out.append(scaling.workloadclass_scaling_watch)
    return out


@kopf.on.event(*WLC)
async def workloadclass_events(**kwargs: Any) -> None:
    """Every part that follows WorkloadClass events, in one kopf handler."""
    for part in parts():
        try:
            await part(**kwargs)
        except Exception:  # one part's bug must not starve the others
            log.exception(
                "class event part failed",
                extra=kv(part=part.__name__, workloadclass=kwargs.get("name", "")),
            )
