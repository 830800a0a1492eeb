"""The registry of Ballast kinds: model, names and printer columns of each."""

from __future__ import annotations

from ballast.api.crd import AGE_COLUMN, READY_COLUMN, REASON_COLUMN, KindInfo, PrinterColumn
from ballast.api.v1alpha1 import BatchWindow, GPUNodeTelemetry, GPUQuota, WorkloadClass

WORKLOADCLASS = KindInfo(
    model=WorkloadClass,
    kind="WorkloadClass",
    plural="workloadclasses",
    short_names=("wlc",),
    columns=(
        PrinterColumn("Tier", ".spec.tier", description="Interactive, Nearline or Offline"),
        PrinterColumn(
            "Priority", ".status.priorityValue", type="integer", description="PriorityClass value"
        ),
        PrinterColumn("PriorityClass", ".status.priorityClassName", priority=1),
        PrinterColumn("Window", ".spec.window", description="BatchWindow gating the class"),
        PrinterColumn("Pending", ".status.pendingPods", type="integer", priority=1),
        PrinterColumn("Running", ".status.runningPods", type="integer", priority=1),
        READY_COLUMN,
        REASON_COLUMN,
        AGE_COLUMN,
    ),
)

GPUQUOTA = KindInfo(
    model=GPUQuota,
    kind="GPUQuota",
    plural="gpuquotas",
    short_names=("gq",),
    columns=(
        PrinterColumn("Cohort", ".spec.cohort"),
        PrinterColumn("GPUs", ".spec.gpus", type="integer", description="Nominal quota"),
        PrinterColumn("Used", ".status.usedGPUs", type="integer"),
        PrinterColumn("Borrowed", ".status.borrowedGPUs", type="integer"),
        PrinterColumn("Waiting", ".status.waitingGPUs", type="integer", priority=1),
        READY_COLUMN,
        REASON_COLUMN,
        AGE_COLUMN,
    ),
)

BATCHWINDOW = KindInfo(
    model=BatchWindow,
    kind="BatchWindow",
    plural="batchwindows",
    short_names=("bw",),
    columns=(
        PrinterColumn("Schedule", ".spec.schedule"),
        PrinterColumn("Duration", ".spec.duration"),
        PrinterColumn("TimeZone", ".spec.timeZone"),
        PrinterColumn("Open", ".status.open", type="boolean"),
        PrinterColumn("NextOpen", ".status.nextOpen"),
        PrinterColumn("NextClose", ".status.nextClose"),
        READY_COLUMN,
        REASON_COLUMN,
        AGE_COLUMN,
    ),
)

GPUNODETELEMETRY = KindInfo(
    model=GPUNodeTelemetry,
    kind="GPUNodeTelemetry",
    plural="gpunodetelemetries",
    short_names=("gnt",),
    columns=(
        PrinterColumn("GPUs", ".status.gpus[*].index", description="GPU indices reported"),
        PrinterColumn(
            "Healthy", ".status.gpus[*].healthy", description="Health of each GPU, by index"
        ),
        PrinterColumn("Updated", ".status.updateTime", type="date", description="updateTime"),
        PrinterColumn(
            "Interval",
            ".status.reportIntervalSeconds",
            type="number",
            priority=1,
            description="Seconds between the agent's collections",
        ),
        AGE_COLUMN,
    ),
)

ALL_KINDS: tuple[KindInfo, ...] = (WORKLOADCLASS, GPUQUOTA, BATCHWINDOW, GPUNODETELEMETRY)
