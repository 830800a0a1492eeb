"""Version v1alpha1 of the ``ballast.dev`` API: one module per kind."""

from ballast.api.v1alpha1.batchwindow import BatchWindow, BatchWindowSpec, BatchWindowStatus
from ballast.api.v1alpha1.gpunodetelemetry import GPUNodeTelemetry, GPUNodeTelemetryStatus
from ballast.api.v1alpha1.gpuquota import GPUQuota, GPUQuotaSpec, GPUQuotaStatus
from ballast.api.v1alpha1.workloadclass import WorkloadClass, WorkloadClassSpec, WorkloadClassStatus

__all__ = [
    "BatchWindow",
    "BatchWindowSpec",
    "BatchWindowStatus",
    "GPUNodeTelemetry",
    "GPUNodeTelemetryStatus",
    "GPUQuota",
    "GPUQuotaSpec",
    "GPUQuotaStatus",
    "WorkloadClass",
    "WorkloadClassSpec",
    "WorkloadClassStatus",
]
