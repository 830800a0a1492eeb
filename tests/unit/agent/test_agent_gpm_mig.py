"""GPM utilisation and MIG devices, through the real pynvml over the compiled fake NVML."""

from __future__ import annotations

import ctypes
import datetime as dt
import math
import subprocess
from collections.abc import Iterator

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ballast.agent.collector import Collector
from ballast.agent.exporter import build_registry
from ballast.agent.mig import MigDevice
from ballast.agent.record import record_status
from ballast.api.v1alpha1.gpunodetelemetry import GPUNodeTelemetryStatus
from ballast.clock import FakeClock
from ballast.localcluster import ClusterError, tools
from ballast.telemetry.nvml import ERROR_NOT_FOUND, ERROR_NOT_SUPPORTED, Nvml

T0 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
GIB = 1 << 30
PROF = {
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE": "gr_active",
    "DCGM_FI_PROF_SM_ACTIVE": "sm_active",
    "DCGM_FI_PROF_SM_OCCUPANCY": "sm_occupancy",
    "DCGM_FI_PROF_DRAM_ACTIVE": "dram_active",
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": "tensor_active",
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def collector(gpus, fake_nvml_lib: str, clock: FakeClock) -> Iterator[Collector]:
    c = Collector(Nvml(fake_nvml_lib), clock)
    yield c
    c.close()


def _samples(collector: Collector) -> list[tuple[str, dict[str, str], float]]:
    registry, _ = build_registry(collector, "gpu-node-1")
    text = generate_latest(registry).decode()
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def _values(samples: list[tuple[str, dict[str, str], float]], name: str) -> dict[str, float]:
    """``name``'s values by gpu label, for series without MIG labels."""
    return {lab["gpu"]: v for n, lab, v in samples if n == name and "GPU_I_ID" not in lab}


def _live_samples(lib: str) -> int:
    count = ctypes.CDLL(lib).fakeNvmlLiveGpmSamples
    count.restype = ctypes.c_long
    return int(count())


# -- GPM ---------------------------------------------------------------------


def test_gpm_gives_utilisation_and_profiling_ratios(gpus, collector: Collector) -> None:
    prof = {"gr_active": 64, "sm_active": 52, "sm_occupancy": 23, "dram_active": 41}
    gpus.gpu(0, tensor_active=9, **prof)
    first = collector.collect()
    # One sample is no rate: the first collection reads nvmlDeviceGetUtilizationRates.
    assert first.gpus[0].gpm is None and first.gpus[0].utilization_pct == 37
    # From now on utilisation is GPM's: the old call is no longer asked.
    gpus.gpu(0, unsupported="util")
    snap = collector.collect()
    g0 = snap.gpus[0]
    assert g0.gpm is not None and g0.gpm.graphics_pct == prof["gr_active"]
    assert g0.utilization_pct == prof["gr_active"]
    assert collector.problems() == {}

    samples = _samples(collector)
    for metric, key in PROF.items():
        expected = gpus.gpus[0][key]
        assert _values(samples, metric)["0"] == pytest.approx(float(str(expected)) / 100), metric
    assert _values(samples, "DCGM_FI_DEV_GPU_UTIL")["0"] == prof["gr_active"]
    # dcgm-exporter's pod labels are on the profiling series too.
    labels = next(lab for n, lab, _ in samples if n == "DCGM_FI_PROF_SM_ACTIVE")
    assert {"UUID", "modelName", "Hostname", "pod", "namespace", "container"} <= labels.keys()


def test_each_gpm_reading_covers_the_latest_interval(gpus, collector: Collector) -> None:
    readings = []
    for gr in (10, 80, 35):
        gpus.gpu(1, gr_active=gr)
        readings.append(collector.collect().gpus[1].utilization_pct)
    # The first comes from the fallback call (util=0), then each interval's own value.
    assert readings == [0, 80, 35]


@pytest.mark.parametrize(
    ("fields", "call"),
    [
        ({"gpm": 0}, "nvmlGpmQueryDeviceSupport"),  # a pre-Hopper GPU
        ({"unsupported": "gpm"}, "nvmlGpmQueryDeviceSupport"),  # a driver that refuses the call
    ],
)
def test_without_gpm_utilisation_falls_back_and_is_counted_once(
    gpus, collector: Collector, fields: dict[str, object], call: str
) -> None:
    gpus.gpu(1, util=58, **fields)
    for _ in range(4):
        snap = collector.collect()
    assert snap.gpus[1].gpm is None and snap.gpus[1].utilization_pct == 58
    assert collector.problems() == {("1", call, ERROR_NOT_SUPPORTED): 1}
    samples = _samples(collector)
    assert set(_values(samples, "DCGM_FI_PROF_GR_ENGINE_ACTIVE")) == {"0"}  # GPU 0 has GPM
    assert _values(samples, "DCGM_FI_DEV_GPU_UTIL")["1"] == 58


def test_gpm_samples_are_freed_with_their_gpu(
    gpus, fake_nvml_lib: str, collector: Collector
) -> None:
    before = _live_samples(fake_nvml_lib)
    collector.collect()
    collector.collect()
    assert _live_samples(fake_nvml_lib) - before == 4  # two buffers per GPU, reused
    gpus.set(count=1)
    snap = collector.collect()
    assert [g.index for g in snap.gpus] == [0]
    assert _live_samples(fake_nvml_lib) - before == 2
    collector.close()
    assert _live_samples(fake_nvml_lib) == before


def test_a_lost_gpu_restarts_its_gpm_pair(gpus, collector: Collector) -> None:
    collector.collect()
    gpus.gpu(0, lost=1)
    assert collector.collect().gpus[0].lost
    gpus.gpu(0, lost=0, gr_active=71)
    back = collector.collect().gpus[0]
    assert back.gpm is None and back.utilization_pct == 37  # a fresh pair: fallback once
    assert collector.collect().gpus[0].utilization_pct == 71


# -- MIG ---------------------------------------------------------------------


def _two_mig_devices(gpus) -> None:
    gpus.gpu(
        0,
        mig=1,
        mig_devices=2,
        **{
            "mig.0.uuid": "MIG-small",
            "mig.0.gi": 9,
            "mig.0.slices": 1,
            "mig.0.mem_total": 9984 << 20,
            "mig.0.mem_used": 2 * GIB,
            "mig.1.uuid": "MIG-large",
            "mig.1.gi": 2,
            "mig.1.slices": 3,
            "mig.1.mem_total": 40704 << 20,
            "mig.1.mem_used": 0,
        },
    )


def test_mig_devices_are_exported_with_dcgm_labels(gpus, collector: Collector) -> None:
    _two_mig_devices(gpus)
    snap = collector.collect()
    mig = snap.gpus[0].mig
    assert mig is not None and mig.enabled and mig.pending
    assert [(d.uuid, d.gpu_instance, d.slices) for d in mig.devices] == [
        ("MIG-small", 9, 1),
        ("MIG-large", 2, 3),
    ]
    assert snap.gpus[1].mig is not None and not snap.gpus[1].mig.enabled
    assert collector.problems() == {}

    samples = _samples(collector)
    fb = {
        (lab["GPU_I_ID"], lab["GPU_I_PROFILE"]): v
        for n, lab, v in samples
        if n == "DCGM_FI_DEV_FB_USED" and lab["gpu"] == "0"
    }
    small, large = mig.devices
    assert fb == {
        ("9", f"1g.{math.ceil(9984 / 1024)}gb"): 2048.0,
        ("2", f"3g.{math.ceil(40704 / 1024)}gb"): 0.0,
    }
    free = {
        lab["GPU_I_ID"]: v
        for n, lab, v in samples
        if n == "DCGM_FI_DEV_FB_FREE" and lab["gpu"] == "0"
    }
    assert free == {"9": 9984.0 - 2048.0, "2": 40704.0}
    # The GPU in MIG mode has no whole-GPU framebuffer series; GPU 1 keeps its own.
    assert set(_values(samples, "DCGM_FI_DEV_FB_USED")) == {"1"}
    assert _values(samples, "ballast_agent_mig_mode") == {"0": 1.0, "1": 0.0}
    info = {lab["mig_uuid"]: lab for n, lab, _ in samples if n == "ballast_agent_mig_device_info"}
    assert info["MIG-large"]["GPU_I_PROFILE"] == large.profile
    assert info["MIG-small"]["GPU_I_ID"] == str(small.gpu_instance)

    status = record_status(snap, "gpu-node-1", 10.0)
    model = GPUNodeTelemetryStatus.model_validate(status)
    assert model.gpus is not None
    g0, g1 = model.gpus
    assert g0.mig_enabled is True and g1.mig_enabled is False and g1.mig_devices is None
    assert g0.mig_devices is not None
    assert [(d.gpu_instance_id, d.uuid, d.memory_used_mib) for d in g0.mig_devices] == [
        (2, "MIG-large", 0),
        (9, "MIG-small", 2048),
    ]


def test_mig_pending_mode_is_reported(gpus, collector: Collector) -> None:
    gpus.gpu(1, mig=0, mig_pending=1)
    mig = collector.collect().gpus[1].mig
    assert mig is not None and not mig.enabled and mig.pending and mig.devices == ()
    assert _values(_samples(collector), "ballast_agent_mig_mode_pending")["1"] == 1.0


def test_a_mig_device_that_vanishes_is_skipped(gpus, collector: Collector) -> None:
    _two_mig_devices(gpus)
    collector.collect()
    # Destroyed between enumeration and reading: its handle answers NOT_FOUND.
    gpus.gpu(0, **{"mig.1.gone": 1})
    snap = collector.collect()
    assert snap.gpus[0].mig is not None
    assert [d.uuid for d in snap.gpus[0].mig.devices] == ["MIG-small"]
    assert collector.problems() == {("0", "nvmlDeviceGetUUID", ERROR_NOT_FOUND): 1}
    assert snap.gpus[0].health.healthy  # a MIG device going is not a sick GPU
    # All MIG devices destroyed: the GPU's own framebuffer series come back.
    gpus.gpu(0, mig_devices=0)
    snap = collector.collect()
    assert snap.gpus[0].mig is not None and snap.gpus[0].mig.devices == ()
    samples = _samples(collector)
    assert set(_values(samples, "DCGM_FI_DEV_FB_USED")) == {"0", "1"}
    assert not [s for s in samples if "GPU_I_ID" in s[1] and s[0].startswith("DCGM")]


def test_a_gpu_without_mig_is_counted_once(gpus, collector: Collector) -> None:
    gpus.gpu(1, unsupported="mig")
    for _ in range(3):
        snap = collector.collect()
    assert snap.gpus[1].mig is None
    assert collector.problems() == {("1", "nvmlDeviceGetMigMode", ERROR_NOT_SUPPORTED): 1}
    assert set(_values(_samples(collector), "ballast_agent_mig_mode")) == {"0"}
    assert "migEnabled" not in record_status(snap, "n", 10.0)["gpus"][1]


@pytest.mark.parametrize(
    ("slices", "memory_mib", "profile"),
    [(1, 10240, "1g.10gb"), (1, 10241, "1g.11gb"), (7, 40192, "7g.40gb"), (2, 9856, "2g.10gb")],
)
def test_profile_name_from_slices_and_memory(slices: int, memory_mib: int, profile: str) -> None:
    d = MigDevice(0, "MIG-x", 1, 0, slices, slices, memory_mib)
    assert d.profile == profile


def test_exposition_with_gpm_and_mig_passes_promtool(gpus, collector: Collector) -> None:
    try:
        promtool = tools.binary(tools.PROMETHEUS, "promtool")
    except ClusterError:
        pytest.skip("promtool is not built (make bins)")
    _two_mig_devices(gpus)
    collector.collect()
    collector.collect()
    registry, _ = build_registry(collector, "gpu-node-1")
    out = subprocess.run(
        [str(promtool), "check", "metrics"],
        input=generate_latest(registry).decode(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    # dcgm-exporter's own label names (UUID, modelName, Hostname, GPU_I_ID) are not
    # snake_case; every other finding (a parse error, a duplicate series) fails.
    findings = [
        line
        for line in (out.stdout + out.stderr).splitlines()
        if line.strip() and "should be written in 'snake_case'" not in line
    ]
    assert out.returncode in (0, 3) and findings == [], out.stdout + out.stderr
