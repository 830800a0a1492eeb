"""ballast.telemetry.nvml against the compiled fake libnvidia-ml: real pynvml, no exceptions out."""

from __future__ import annotations

import pynvml
import pytest

from ballast.telemetry import nvml as nv
from ballast.telemetry.nvml import Memory, Nvml, Problem, RemappedRows, XidEvent


@pytest.fixture
def lib(gpus, fake_nvml_lib: str) -> Nvml:
    n = Nvml(fake_nvml_lib)
    assert n.init() is None
    return n


def test_reads_every_field(gpus, lib: Nvml) -> None:
    gpus.gpu(0, clocks=nv.CLOCKS_HW_SLOWDOWN, ecc_dbe=3, remap="4,1,1,0")
    assert lib.driver_version() == "550.54.15"
    assert lib.device_count() == 2
    h = lib.handle(0)
    assert not isinstance(h, Problem)
    assert lib.name(h) == "NVIDIA H100 80GB HBM3"
    assert lib.uuid(h) == "GPU-aaaa"
    assert lib.memory(h) == Memory(total=80 << 30, used=8 << 30, free=72 << 30)
    assert lib.utilization_pct(h) == 37
    assert lib.power_mw(h) == 250_500
    assert lib.temperature_c(h) == 45
    assert lib.clock_event_reasons(h) == nv.CLOCKS_HW_SLOWDOWN
    assert lib.ecc_uncorrected_volatile(h) == 3
    assert lib.remapped_rows(h) == RemappedRows(4, 1, True, False)


def test_errors_become_problems(gpus, lib: Nvml) -> None:
    gpus.gpu(1, unsupported="power,remap")
    h1 = lib.handle(1)
    assert not isinstance(h1, Problem)
    power = lib.power_mw(h1)
    assert isinstance(power, Problem) and power.unsupported
    assert power.call == "nvmlDeviceGetPowerUsage" and power.message == "Not Supported"
    remap = lib.remapped_rows(h1)
    assert isinstance(remap, Problem) and remap.unsupported
    gpus.gpu(1, lost=1)
    util = lib.utilization_pct(h1)
    assert isinstance(util, Problem) and util.gpu_lost
    gone = lib.handle(7)
    assert isinstance(gone, Problem) and gone.code == 2


def test_init_failures_are_problems(gpus, lib: Nvml, monkeypatch: pytest.MonkeyPatch) -> None:
    gpus.set(init_error=9)  # NVML_ERROR_DRIVER_NOT_LOADED
    problem = lib.init()
    assert problem is not None and problem.code == 9 and "Driver Not Loaded" in problem.message
    monkeypatch.setattr(pynvml, "nvmlLib", None)
    missing = Nvml("/nonexistent/libnvidia-ml.so.1").init()
    assert missing is not None and missing.code == nv.ERROR_LIBRARY_NOT_FOUND


def test_xid_events(gpus, lib: Nvml) -> None:
    h1 = lib.handle(1)
    assert not isinstance(h1, Problem)
    es = lib.event_set_create()
    assert not isinstance(es, Problem)
    assert lib.register_xid_events(h1, es) is None
    assert lib.wait_xid(es, 20) is None  # timeout is "no event", not a problem
    gpus.raise_xid(1, 79)
    assert lib.wait_xid(es, 500) == XidEvent(nv.handle_key(h1), 79)
    assert lib.wait_xid(es, 20) is None  # delivered once
    lib.event_set_free(es)
    gpus.set(events=0)
    unsupported = lib.event_set_create()
    assert isinstance(unsupported, Problem) and unsupported.unsupported
