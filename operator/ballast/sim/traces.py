"""Loaders for the public traces in shared/traces (read as they are, never edited).

- openb (cluster-trace-gpu-v2023): node lists and pod lists. Pod lists without
  a ``creation_time`` column (``multigpu50``) keep file order as arrival order.
- GenAI (cluster-trace-v2026-GenAI): the LoRA request trace and the base-model
  load latencies.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

from ballast.api.wellknown import LABEL_GPU_MEMORY_MIB, LABEL_GPU_PRODUCT, LABEL_REGION, LABEL_ZONE
from ballast.placement.objects import MILLI, NodeInfo, Pod

#: GPU memory per product (MiB). G1-G3 are undisclosed in the trace; the
#: values here are assumptions (documented in docs/simulator.md).
GPU_MEMORY_MIB = {
    "P100": 16384,
    "T4": 15360,
    "V100M16": 16384,
    "V100M32": 32768,
    "A10": 24576,
    "G1": 16384,
    "G2": 32768,
    "G3": 81920,
}
ZONES = 4


@dataclass(frozen=True, slots=True)
class TraceTask:
    """One pod of an openb pod list, with what the trace says about its life."""

    pod: Pod
    qos: str
    duration_s: float | None


def _int(value: str | None, default: int = 0) -> int:
    if value is None or value.strip() in ("", "nan"):
        return default
    return int(float(value))


def node_info(name: str, cpu: int, mem: int, gpus: int, model: str, index: int) -> NodeInfo:
    """An openb node as the engine sees it, with zone/region labels assigned round-robin."""
    labels = {
        "kubernetes.io/hostname": name,
        LABEL_ZONE: f"zone-{index % ZONES}",
        LABEL_REGION: "region-a",
    }
    if gpus:
        labels[LABEL_GPU_PRODUCT] = model
        labels[LABEL_GPU_MEMORY_MIB] = str(GPU_MEMORY_MIB.get(model, 16384))
    return NodeInfo(
        name=name,
        gpu_count=gpus,
        gpu_memory_mib=GPU_MEMORY_MIB.get(model, 16384) if gpus else 0,
        gpu_product=model if gpus else "",
        cpu_milli=cpu,
        memory_mib=mem,
        labels=labels,
    )


def load_openb_nodes(path: str | Path) -> list[NodeInfo]:
    """Read an openb node list (``sn,cpu_milli,memory_mib,gpu,model``)."""
    with open(path, newline="") as fh:
        return [
            node_info(
                r["sn"],
                _int(r["cpu_milli"]),
                _int(r["memory_mib"]),
                _int(r["gpu"]),
                (r.get("model") or "").strip(),
                i,
            )
            for i, r in enumerate(csv.DictReader(fh))
        ]


def openb_pod(row: dict[str, str], index: int, namespace: str = "openb") -> TraceTask:
    """One openb pod-list row as a :class:`TraceTask`."""
    num = _int(row.get("num_gpu"))
    milli = _int(row.get("gpu_milli"))
    spec = (row.get("gpu_spec") or "").strip()
    products = tuple(sorted(p for p in spec.split("|") if p and p != "nan"))
    whole = num if num > 1 or (num == 1 and milli >= MILLI) else 0
    share = milli if num == 1 and 0 < milli < MILLI else 0
    created = float(_int(row.get("creation_time"), index))
    deleted = row.get("deletion_time")
    duration = None
    if deleted not in (None, "", "nan"):
        duration = max(1.0, float(_int(deleted)) - created)
    pod = Pod(
        namespace=namespace,
        name=row["name"],
        uid=row["name"],
        gpus=whole,
        gpu_milli=share,
        cpu_milli=_int(row.get("cpu_milli")),
        memory_mib=_int(row.get("memory_mib")),
        gpu_products=products if (whole or share) else (),
        creation_time=created,
    )
    return TraceTask(pod, (row.get("qos") or "").strip(), duration)


def load_openb_pods(path: str | Path) -> list[TraceTask]:
    """Read an openb pod list in arrival order (creation time, then file order)."""
    with open(path, newline="") as fh:
        tasks = [openb_pod(r, i) for i, r in enumerate(csv.DictReader(fh))]
    return sorted(tasks, key=lambda t: t.pod.creation_time)


@dataclass(frozen=True, slots=True)
class Request:
    """One GenAI serving request."""

    time: float
    tenant: str
    model: str
    exec_s: float
    kind: str
    ok: bool


def load_genai_requests(path: str | Path) -> list[Request]:
    """Read ``lora_request_trace_*.csv``; times are seconds since the first request."""
    out: list[Request] = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            t = dt.datetime.strptime(r["gmt_create"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)
            exec_s = float(r["exec_time_seconds"] or 0.0)
            out.append(
                Request(
                    t.timestamp(),
                    r["groupId"],
                    r["checkpoint_model_version_id"],
                    exec_s if math.isfinite(exec_s) else 0.0,
                    r["predict_type"],
                    r["predict_status"] == "SUCCEED",
                )
            )
    out.sort(key=lambda q: q.time)
    t0 = out[0].time if out else 0.0
    return [Request(q.time - t0, q.tenant, q.model, q.exec_s, q.kind, q.ok) for q in out]


def load_latencies_ms(path: str | Path) -> list[float]:
    """Read a ``*_update_latency_anon.csv`` file: the ``value`` column (milliseconds)."""
    with open(path, newline="") as fh:
        return [float(r["value"]) for r in csv.DictReader(fh) if r.get("value")]
