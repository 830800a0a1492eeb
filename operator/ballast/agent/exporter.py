"""Prometheus ``/metrics`` in dcgm-exporter's names, units and labels, plus ``ballast_agent_*``.

A custom collector renders the collector's latest snapshot at scrape time, so
the series of a GPU that vanished disappear with it (no stale labelled gauges).
dcgm-exporter types ``DCGM_FI_DEV_ECC_DBE_VOL_TOTAL`` as a counter without a
``_total`` suffix, which prometheus_client cannot emit; it is a gauge here,
with the same name and value, so queries and dashboards are unchanged.

Where GPM gives readings, the ``DCGM_FI_PROF_*`` series carry them as ratios
(0-1), as dcgm-exporter's profiling fields are. On a GPU in MIG mode with MIG
devices, the framebuffer series are per MIG device, with dcgm-exporter's
``GPU_I_ID`` and ``GPU_I_PROFILE`` labels added, instead of per GPU (so a sum
over them counts each byte once).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as _PromCollector
from prometheus_client.samples import Sample

from ballast.agent.attributor import Attributor
from ballast.agent.collector import Collector, GPUSample
from ballast.agent.gpm import GpmReading
from ballast.agent.mig import MigDevice
from ballast.agent.record import MIB, Publisher

GPU_LABELS = ["gpu", "UUID", "device", "modelName", "Hostname"]
# dcgm-exporter's pod labels: the attributed pod, "" when none (the first owner
# when several pods share the GPU; ballast_agent_gpu_pod_info lists them all).
POD_LABELS = ["container", "namespace", "pod"]
DCGM_LABELS = [*GPU_LABELS, *POD_LABELS]
POD_NONE = ("", "", "")
MIG_LABELS = ["GPU_I_ID", "GPU_I_PROFILE"]


def _ratio(g: GPUSample, read: Callable[[GpmReading], float | None]) -> float | None:
    pct = read(g.gpm) if g.gpm is not None else None
    return None if pct is None else pct / 100.0


# name, help, value from a sample (None: not exported for that GPU)
_DCGM: list[tuple[str, str, Callable[[GPUSample], float | None]]] = [
    ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", lambda g: g.utilization_pct),
    (
        "DCGM_FI_DEV_FB_USED",
        "Framebuffer memory used (in MiB).",
        lambda g: g.memory.used // MIB if g.memory else None,
    ),
    (
        "DCGM_FI_DEV_FB_FREE",
        "Framebuffer memory free (in MiB).",
        lambda g: g.memory.free // MIB if g.memory else None,
    ),
    (
        "DCGM_FI_DEV_FB_TOTAL",
        "Framebuffer memory total (in MiB).",
        lambda g: g.memory.total // MIB if g.memory else None,
    ),
    ("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", lambda g: g.power_w),
    ("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", lambda g: g.temperature_c),
    (
        "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS",
        "Current clock throttle reasons (bitmask of nvmlClocksEventReason*).",
        lambda g: g.clock_reasons,
    ),
    (
        "DCGM_FI_DEV_XID_ERRORS",
        "Value of the last XID error encountered.",
        lambda g: None if g.lost else g.last_xid,
    ),
    (
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        "Total number of double-bit volatile ECC errors.",
        lambda g: g.ecc_uncorrected,
    ),
    (
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
        "Number of remapped rows for correctable errors.",
        lambda g: g.remap.correctable if g.remap else None,
    ),
    (
        "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
        "Number of remapped rows for uncorrectable errors.",
        lambda g: g.remap.uncorrectable if g.remap else None,
    ),
    (
        "DCGM_FI_DEV_ROW_REMAP_FAILURE",
        "Whether remapping of rows has failed.",
        lambda g: float(g.remap.failure) if g.remap else None,
    ),
    (
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
        "Ratio of time the graphics engine is active.",
        lambda g: _ratio(g, lambda r: r.graphics_pct),
    ),
    (
        "DCGM_FI_PROF_SM_ACTIVE",
        "The ratio of cycles an SM has at least 1 warp assigned.",
        lambda g: _ratio(g, lambda r: r.sm_active_pct),
    ),
    (
        "DCGM_FI_PROF_SM_OCCUPANCY",
        "The ratio of number of warps resident on an SM.",
        lambda g: _ratio(g, lambda r: r.sm_occupancy_pct),
    ),
    (
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
        "Ratio of cycles the tensor (HMMA) pipe is active.",
        lambda g: _ratio(g, lambda r: r.tensor_active_pct),
    ),
    (
        "DCGM_FI_PROF_DRAM_ACTIVE",
        "Ratio of cycles the device memory interface is active sending or receiving data.",
        lambda g: _ratio(g, lambda r: r.dram_active_pct),
    ),
]

# Framebuffer series that are per MIG device on a GPU with MIG devices.
_MIG_FB: dict[str, Callable[[MigDevice], float | None]] = {
    "DCGM_FI_DEV_FB_USED": lambda d: d.memory.used // MIB if d.memory else None,
    "DCGM_FI_DEV_FB_FREE": lambda d: d.memory.free // MIB if d.memory else None,
    "DCGM_FI_DEV_FB_TOTAL": lambda d: d.memory.total // MIB if d.memory else None,
}


class AgentMetrics(_PromCollector):
    """Renders a :class:`Collector`'s snapshot and problem counts at scrape time."""

    def __init__(
        self,
        collector: Collector,
        hostname: str,
        publisher: Publisher | None,
        attributor: Attributor | None = None,
    ) -> None:
        self.collector = collector
        self.hostname = hostname
        self.publisher = publisher
        self.attributor = attributor

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family for the current snapshot."""
        snap = self.collector.snapshot()
        families = {
            name: GaugeMetricFamily(name, help_, labels=DCGM_LABELS) for name, help_, _ in _DCGM
        }
        pod_info = GaugeMetricFamily(
            "ballast_agent_gpu_pod_info",
            "1 for each container holding the GPU, by source (pod-resources: the kubelet; "
            "ballast: the pod's ballast.dev/gpu-ids).",
            labels=[*GPU_LABELS, *POD_LABELS, "source"],
        )
        healthy = GaugeMetricFamily(
            "ballast_agent_gpu_healthy",
            "1 if the GPU passes every row of the health table (docs/agent.md), else 0.",
            labels=GPU_LABELS,
        )
        reasons = GaugeMetricFamily(
            "ballast_agent_gpu_unhealthy_reason",
            "1 for each health-table row that currently marks the GPU unhealthy.",
            labels=[*GPU_LABELS, "reason"],
        )
        for g in snap.gpus:
            labels = [str(g.index), g.uuid, f"nvidia{g.index}", g.name, self.hostname]
            first = g.pods[0] if g.pods else None
            dcgm = [
                *labels,
                *((first.container, first.namespace, first.pod) if first else POD_NONE),
            ]
            mig_devices = () if g.lost or g.mig is None else g.mig.devices
            for name, _, value in _DCGM:
                if mig_devices and name in _MIG_FB:
                    _add_mig(families[name], labels, mig_devices, _MIG_FB[name])
                    continue
                v = None if g.lost else value(g)
                if v is not None:
                    families[name].add_metric(dcgm, float(v))
            for o in g.pods:
                pod_info.add_metric([*labels, o.container, o.namespace, o.pod, o.source], 1.0)
            healthy.add_metric(labels, 1.0 if g.health.healthy else 0.0)
            for r in g.health.reasons:
                reasons.add_metric([*labels, r], 1.0)
        yield from families.values()
        yield from _mig_metrics(snap.gpus, self.hostname)
        yield healthy
        yield reasons
        yield pod_info
        if self.attributor is not None:
            yield from _attribution_metrics(self.attributor)
        yield GaugeMetricFamily(
            "ballast_agent_nvml_available",
            "1 while NVML is initialised and answering.",
            value=1.0 if snap.nvml_available else 0.0,
        )
        yield GaugeMetricFamily(
            "ballast_agent_gpus", "GPUs NVML reported at the last collection.", value=len(snap.gpus)
        )
        problems = CounterMetricFamily(
            "ballast_agent_problems",
            "NVML calls that failed, by GPU index (empty: node-wide), call and NVML return code.",
            labels=["gpu", "call", "code"],
        )
        for (gpu, call, code), n in sorted(self.collector.problems().items()):
            problems.add_metric([gpu, call, str(code)], float(n))
        yield problems
        if self.publisher is not None:
            writes = CounterMetricFamily(
                "ballast_agent_record_writes",
                "Writes of the per-node record, by target (file, node, record).",
                labels=["target"],
            )
            failures = CounterMetricFamily(
                "ballast_agent_record_write_failures",
                "Failed writes of the per-node record, by target.",
                labels=["target"],
            )
            for target in ("file", "node", "record"):
                writes.add_metric([target], float(self.publisher.writes[target]))
                failures.add_metric([target], float(self.publisher.failures[target]))
            yield writes
            yield failures


def _add_mig(
    family: GaugeMetricFamily,
    labels: list[str],
    devices: tuple[MigDevice, ...],
    value: Callable[[MigDevice], float | None],
) -> None:
    """One sample per MIG device: the GPU's labels, no pod, and GPU_I_ID/GPU_I_PROFILE."""
    for d in devices:
        v = value(d)
        if v is None:
            continue
        names = [*GPU_LABELS, *POD_LABELS, *MIG_LABELS]
        values = [*labels, *POD_NONE, str(d.gpu_instance), d.profile]
        family.samples.append(Sample(family.name, dict(zip(names, values, strict=True)), float(v)))


def _mig_metrics(gpus: tuple[GPUSample, ...], hostname: str) -> Iterator[Metric]:
    mode = GaugeMetricFamily(
        "ballast_agent_mig_mode",
        "1 if MIG mode is on for the GPU, else 0 (absent: the GPU has no MIG).",
        labels=GPU_LABELS,
    )
    pending = GaugeMetricFamily(
        "ballast_agent_mig_mode_pending",
        "MIG mode the GPU takes at its next reset (1 on, 0 off).",
        labels=GPU_LABELS,
    )
    info = GaugeMetricFamily(
        "ballast_agent_mig_device_info",
        "1 for each MIG device of the GPU, with its GPU instance, profile, compute instance "
        "and UUID.",
        labels=[*GPU_LABELS, *MIG_LABELS, "compute_instance_id", "mig_uuid"],
    )
    for g in gpus:
        if g.mig is None or g.lost:
            continue
        labels = [str(g.index), g.uuid, f"nvidia{g.index}", g.name, hostname]
        mode.add_metric(labels, 1.0 if g.mig.enabled else 0.0)
        pending.add_metric(labels, 1.0 if g.mig.pending else 0.0)
        for d in g.mig.devices:
            ids = [str(d.gpu_instance), d.profile, str(d.compute_instance), d.uuid]
            info.add_metric([*labels, *ids], 1.0)
    yield mode
    yield pending
    yield info


def _attribution_metrics(attributor: Attributor) -> Iterator[Metric]:
    yield CounterMetricFamily(
        "ballast_agent_attribution_conflicts",
        "Pods whose GPUs per the kubelet's pod-resources differ from their ballast.dev/gpu-ids "
        "(counted when a disagreement appears; the kubelet's allocation wins).",
        value=float(attributor.conflicts_total),
    )
    available = attributor.pod_resources_available()
    if available is not None:
        yield GaugeMetricFamily(
            "ballast_agent_pod_resources_available",
            "1 while the kubelet's pod-resources socket answers List.",
            value=1.0 if available else 0.0,
        )
    if attributor.pods is not None:
        requests = CounterMetricFamily(
            "ballast_agent_pod_api_requests",
            "Kubernetes API requests for this node's pods (list pages and watches).",
            labels=["verb"],
        )
        for verb, n in sorted(attributor.pods.request_counts().items()):
            requests.add_metric([verb], float(n))
        yield requests


def build_registry(
    collector: Collector,
    hostname: str,
    publisher: Publisher | None = None,
    attributor: Attributor | None = None,
) -> tuple[CollectorRegistry, Histogram]:
    """A registry with the agent's metrics, and the collection-time histogram to observe."""
    registry = CollectorRegistry()
    registry.register(AgentMetrics(collector, hostname, publisher, attributor))
    collect_seconds = Histogram(
        "ballast_agent_collect_seconds",
        "Time to read every GPU once through NVML.",
        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        registry=registry,
    )
    return registry, collect_seconds
