"""kopf handlers, one module per watched kind; importing this package registers them."""

from ballast.controller.handlers import (  # noqa: F401
    batchwindow,
    disruption,
    gpuquota,
    jobs,
    nodepools,
    priorityclass,
    scaling,
    slo,
    workloadclass,
)
