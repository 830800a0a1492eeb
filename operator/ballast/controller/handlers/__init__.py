"""kopf handlers, one module per watched kind; importing this package registers them."""

from ballast.controller.handlers import (  # noqa: F401
    batchwindow,
    disruption,
    gpuquota,
    jobs,
    nodepools,
    priorityclass,
    resync,
    slo,
    wlc_events,
    workloadclass,
)
from ballast.controller.scaling_sync import scaling_enabled

if scaling_enabled():  # BALLAST_SCALING=off: no watch on workloads or ScaledObjects at all
    from ballast.controller.handlers import scaling  # noqa: F401
