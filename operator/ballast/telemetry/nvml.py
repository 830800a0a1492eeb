"""The only importer of ``pynvml`` (nvidia-ml-py): a thin, typed, never-raising wrapper.

Every NVML call returns either its value or a :class:`Problem` naming the call
and the NVML return code; ``pynvml.NVMLError`` (NOT_SUPPORTED, GPU_IS_LOST, a
missing library, an uninitialised handle, ...) never escapes this module, so
the agent can treat bad data as a reported condition instead of a crash.

pynvml loads ``libnvidia-ml.so.1`` through the dynamic loader on first init;
``library_path`` (the agent's ``--nvml-library``) loads a specific file instead,
which is how the tests point the real pynvml code path at a fake library.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NewType, TypeVar

import pynvml

# NVML return codes the agent reacts to (values from nvml.h, mirrored by pynvml).
SUCCESS = 0
ERROR_UNINITIALIZED = 1
ERROR_NOT_SUPPORTED = 3
ERROR_NOT_FOUND = 6
ERROR_TIMEOUT = 10
ERROR_LIBRARY_NOT_FOUND = 12
ERROR_FUNCTION_NOT_FOUND = 13
ERROR_GPU_IS_LOST = 15
ERROR_UNKNOWN = 999

# Codes meaning "this GPU or driver will never answer this call": record once, stop asking.
UNSUPPORTED_CODES = frozenset({ERROR_NOT_SUPPORTED, ERROR_FUNCTION_NOT_FOUND})

# Clock-event reason bits (nvmlClocksEventReason*).
CLOCKS_HW_SLOWDOWN = 0x08
CLOCKS_HW_THERMAL_SLOWDOWN = 0x40
CLOCKS_HW_POWER_BRAKE_SLOWDOWN = 0x80
CLOCKS_HW_ANY = CLOCKS_HW_SLOWDOWN | CLOCKS_HW_THERMAL_SLOWDOWN | CLOCKS_HW_POWER_BRAKE_SLOWDOWN
CLOCKS_SW_POWER_CAP = 0x04
CLOCKS_SW_THERMAL_SLOWDOWN = 0x20

EVENT_XID_CRITICAL = 0x8

# GPM metric ids (nvmlGpmMetricId_t), as pynvml names them.
GPM_GRAPHICS_UTIL = int(pynvml.NVML_GPM_METRIC_GRAPHICS_UTIL)
GPM_SM_UTIL = int(pynvml.NVML_GPM_METRIC_SM_UTIL)
GPM_SM_OCCUPANCY = int(pynvml.NVML_GPM_METRIC_SM_OCCUPANCY)
GPM_ANY_TENSOR_UTIL = int(pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL)
GPM_DRAM_BW_UTIL = int(pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL)

Handle = NewType("Handle", object)
EventSet = NewType("EventSet", object)
GpmSample = NewType("GpmSample", object)
T = TypeVar("T")

_load_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Problem:
    """An NVML call that did not answer: which call, the NVML code and its text."""

    call: str
    code: int
    message: str

    @property
    def unsupported(self) -> bool:
        """The GPU or driver does not offer this call (asking again is pointless)."""
        return self.code in UNSUPPORTED_CODES

    @property
    def gpu_lost(self) -> bool:
        """The GPU fell off the bus or otherwise stopped answering."""
        return self.code == ERROR_GPU_IS_LOST


@dataclass(frozen=True, slots=True)
class Memory:
    """Framebuffer memory in bytes."""

    total: int
    used: int
    free: int


@dataclass(frozen=True, slots=True)
class RemappedRows:
    """Row-remapper state (Ampere and later)."""

    correctable: int
    uncorrectable: int
    pending: bool
    failure: bool


@dataclass(frozen=True, slots=True)
class MigMode:
    """MIG mode of a GPU: what it is now and what it becomes at the next GPU reset."""

    current: bool
    pending: bool


@dataclass(frozen=True, slots=True)
class MigIds:
    """Where a MIG device sits: its GPU instance and compute instance."""

    gpu_instance: int
    compute_instance: int


@dataclass(frozen=True, slots=True)
class Attributes:
    """``nvmlDeviceGetAttributes``: the slices and memory of a (MIG) device."""

    gpu_instance_slices: int
    compute_instance_slices: int
    multiprocessors: int
    memory_mib: int


@dataclass(frozen=True, slots=True)
class XidEvent:
    """One critical XID event, with the key of the handle it happened on."""

    handle_key: int
    xid: int


def _guard(call: str, fn: Callable[[], T]) -> T | Problem:
    try:
        return fn()
    except pynvml.NVMLError as exc:
        code = int(getattr(exc, "value", ERROR_UNKNOWN))
        try:
            message = str(exc)
        except Exception:  # nvmlErrorString itself can fail on a broken library
            message = f"NVML error {code}"
        return Problem(call, code, message)
    except (OSError, ctypes.ArgumentError, AttributeError, ValueError) as exc:
        return Problem(call, ERROR_UNKNOWN, f"{type(exc).__name__}: {exc}")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def handle_key(handle: object) -> int:
    """A stable integer for a device handle (NVML handles are pointers)."""
    return int(ctypes.cast(handle, ctypes.c_void_p).value or 0)  # type: ignore[arg-type]


class Nvml:
    """Typed NVML calls; each returns its value or a :class:`Problem`, never raises."""

    def __init__(self, library_path: str | None = None) -> None:
        self.library_path = library_path

    def _load(self) -> Problem | None:
        if not self.library_path:
            return None
        with _load_lock:
            if pynvml.nvmlLib is not None:
                return None
            try:
                # pynvml keeps the loaded library in this module global; setting it
                # first makes its own _LoadNvmlLibrary a no-op.
                pynvml.nvmlLib = ctypes.CDLL(self.library_path)
            except OSError as exc:
                return Problem("load", ERROR_LIBRARY_NOT_FOUND, str(exc))
        return None

    def init(self) -> Problem | None:
        """``nvmlInit``; None on success."""
        problem = self._load()
        if problem is not None:
            return problem
        result = _guard("nvmlInit", pynvml.nvmlInit)
        return result if isinstance(result, Problem) else None

    def shutdown(self) -> Problem | None:
        """``nvmlShutdown``; None on success."""
        result = _guard("nvmlShutdown", pynvml.nvmlShutdown)
        return result if isinstance(result, Problem) else None

    def driver_version(self) -> str | Problem:
        """The kernel driver version string."""
        return _guard(
            "nvmlSystemGetDriverVersion", lambda: _text(pynvml.nvmlSystemGetDriverVersion())
        )

    def device_count(self) -> int | Problem:
        """How many GPUs NVML sees."""
        return _guard("nvmlDeviceGetCount", lambda: int(pynvml.nvmlDeviceGetCount()))

    def handle(self, index: int) -> Handle | Problem:
        """The device handle of GPU ``index``."""
        return _guard(
            "nvmlDeviceGetHandleByIndex",
            lambda: Handle(pynvml.nvmlDeviceGetHandleByIndex(index)),
        )

    def name(self, h: Handle) -> str | Problem:
        """Product name, e.g. ``NVIDIA H100 80GB HBM3``."""
        return _guard("nvmlDeviceGetName", lambda: _text(pynvml.nvmlDeviceGetName(h)))

    def uuid(self, h: Handle) -> str | Problem:
        """``GPU-xxxxxxxx-...``."""
        return _guard("nvmlDeviceGetUUID", lambda: _text(pynvml.nvmlDeviceGetUUID(h)))

    def memory(self, h: Handle) -> Memory | Problem:
        """Framebuffer total/used/free in bytes."""

        def read() -> Memory:
            m = pynvml.nvmlDeviceGetMemoryInfo(h)
            return Memory(total=int(m.total), used=int(m.used), free=int(m.free))

        return _guard("nvmlDeviceGetMemoryInfo", read)

    def utilization_pct(self, h: Handle) -> int | Problem:
        """Percent of the last sample period a kernel was running."""
        return _guard(
            "nvmlDeviceGetUtilizationRates",
            lambda: int(pynvml.nvmlDeviceGetUtilizationRates(h).gpu),
        )

    def power_mw(self, h: Handle) -> int | Problem:
        """Board power draw in milliwatts."""
        return _guard("nvmlDeviceGetPowerUsage", lambda: int(pynvml.nvmlDeviceGetPowerUsage(h)))

    def temperature_c(self, h: Handle) -> int | Problem:
        """GPU core temperature in degrees C."""
        return _guard(
            "nvmlDeviceGetTemperature",
            lambda: int(pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU)),
        )

    def clock_event_reasons(self, h: Handle) -> int | Problem:
        """Bitmask of why clocks are held down (``CLOCKS_*``); falls back to the old name."""
        result = _guard(
            "nvmlDeviceGetCurrentClocksEventReasons",
            lambda: int(pynvml.nvmlDeviceGetCurrentClocksEventReasons(h)),
        )
        if isinstance(result, Problem) and result.code == ERROR_FUNCTION_NOT_FOUND:
            return _guard(
                "nvmlDeviceGetCurrentClocksThrottleReasons",
                lambda: int(pynvml.nvmlDeviceGetCurrentClocksThrottleReasons(h)),
            )
        return result

    def ecc_uncorrected_volatile(self, h: Handle) -> int | Problem:
        """Uncorrected (double-bit) ECC errors since the driver loaded."""
        return _guard(
            "nvmlDeviceGetTotalEccErrors",
            lambda: int(
                pynvml.nvmlDeviceGetTotalEccErrors(
                    h, pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_VOLATILE_ECC
                )
            ),
        )

    def remapped_rows(self, h: Handle) -> RemappedRows | Problem:
        """Row-remapper counters and pending/failure flags."""

        def read() -> RemappedRows:
            corr, unc, pending, failure = pynvml.nvmlDeviceGetRemappedRows(h)
            return RemappedRows(int(corr), int(unc), bool(pending), bool(failure))

        return _guard("nvmlDeviceGetRemappedRows", read)

    def event_set_create(self) -> EventSet | Problem:
        """A new event set."""
        return _guard("nvmlEventSetCreate", lambda: EventSet(pynvml.nvmlEventSetCreate()))

    def register_xid_events(self, h: Handle, es: EventSet) -> Problem | None:
        """Ask for critical XID events of GPU ``h`` on ``es``."""
        result = _guard(
            "nvmlDeviceRegisterEvents",
            lambda: pynvml.nvmlDeviceRegisterEvents(h, EVENT_XID_CRITICAL, es),
        )
        return result if isinstance(result, Problem) else None

    def wait_xid(self, es: EventSet, timeout_ms: int) -> XidEvent | Problem | None:
        """The next XID event on ``es``, or None after ``timeout_ms`` without one."""

        def wait() -> XidEvent | None:
            data = pynvml.nvmlEventSetWait_v2(es, timeout_ms)
            if int(data.eventType) & EVENT_XID_CRITICAL == 0:
                return None
            return XidEvent(handle_key(data.device), int(data.eventData))

        result = _guard("nvmlEventSetWait", wait)
        if isinstance(result, Problem) and result.code == ERROR_TIMEOUT:
            return None
        return result

    def event_set_free(self, es: EventSet) -> None:
        """Release ``es`` (errors ignored: nothing useful can be done about them)."""
        _guard("nvmlEventSetFree", lambda: pynvml.nvmlEventSetFree(es))

    # -- GPM (Hopper and later) --------------------------------------------

    def gpm_supported(self, h: Handle) -> bool | Problem:
        """Whether GPU ``h`` offers GPM metrics (``nvmlGpmQueryDeviceSupport``)."""
        return _guard(
            "nvmlGpmQueryDeviceSupport",
            lambda: bool(pynvml.nvmlGpmQueryDeviceSupport(h).isSupportedDevice),
        )

    def gpm_sample_alloc(self) -> GpmSample | Problem:
        """A new GPM sample buffer (free it with :meth:`gpm_sample_free`)."""
        return _guard("nvmlGpmSampleAlloc", lambda: GpmSample(pynvml.nvmlGpmSampleAlloc()))

    def gpm_sample_get(self, h: Handle, sample: GpmSample) -> Problem | None:
        """Take a GPM sample of GPU ``h`` into ``sample``; None on success."""
        result = _guard("nvmlGpmSampleGet", lambda: pynvml.nvmlGpmSampleGet(h, sample))
        return result if isinstance(result, Problem) else None

    def gpm_metrics(
        self, older: GpmSample, newer: GpmSample, metric_ids: tuple[int, ...]
    ) -> dict[int, float] | Problem:
        """``metric_ids`` over the interval between two samples; metrics NVML refused are absent."""

        def read() -> dict[int, float]:
            req = pynvml.c_nvmlGpmMetricsGet_t()
            req.version = pynvml.NVML_GPM_METRICS_GET_VERSION
            req.numMetrics = len(metric_ids)
            req.sample1 = older
            req.sample2 = newer
            for n, metric in enumerate(metric_ids):
                req.metrics[n].metricId = metric
            pynvml.nvmlGpmMetricsGet(req)
            return {
                int(m.metricId): float(m.value)
                for m in req.metrics[: len(metric_ids)]
                if int(m.nvmlReturn) == SUCCESS
            }

        return _guard("nvmlGpmMetricsGet", read)

    def gpm_sample_free(self, sample: GpmSample) -> None:
        """Release ``sample`` (errors ignored)."""
        _guard("nvmlGpmSampleFree", lambda: pynvml.nvmlGpmSampleFree(sample))

    # -- MIG ---------------------------------------------------------------

    def mig_mode(self, h: Handle) -> MigMode | Problem:
        """Current and pending MIG mode of GPU ``h``."""

        def read() -> MigMode:
            current, pending = pynvml.nvmlDeviceGetMigMode(h)
            return MigMode(bool(current), bool(pending))

        return _guard("nvmlDeviceGetMigMode", read)

    def max_mig_devices(self, h: Handle) -> int | Problem:
        """How many MIG devices GPU ``h`` can hold (the slots to enumerate)."""
        return _guard(
            "nvmlDeviceGetMaxMigDeviceCount", lambda: int(pynvml.nvmlDeviceGetMaxMigDeviceCount(h))
        )

    def mig_device(self, h: Handle, slot: int) -> Handle | Problem:
        """The MIG device in ``slot`` of GPU ``h`` (``ERROR_NOT_FOUND``: an empty slot)."""
        return _guard(
            "nvmlDeviceGetMigDeviceHandleByIndex",
            lambda: Handle(pynvml.nvmlDeviceGetMigDeviceHandleByIndex(h, slot)),
        )

    def mig_ids(self, mig: Handle) -> MigIds | Problem:
        """GPU instance and compute instance ids of MIG device ``mig``."""
        gi = _guard(
            "nvmlDeviceGetGpuInstanceId", lambda: int(pynvml.nvmlDeviceGetGpuInstanceId(mig))
        )
        if isinstance(gi, Problem):
            return gi
        ci = _guard(
            "nvmlDeviceGetComputeInstanceId",
            lambda: int(pynvml.nvmlDeviceGetComputeInstanceId(mig)),
        )
        return ci if isinstance(ci, Problem) else MigIds(gi, ci)

    def attributes(self, h: Handle) -> Attributes | Problem:
        """Slices, multiprocessors and memory of a (MIG) device."""

        def read() -> Attributes:
            a = pynvml.nvmlDeviceGetAttributes(h)
            return Attributes(
                int(a.gpuInstanceSliceCount),
                int(a.computeInstanceSliceCount),
                int(a.multiprocessorCount),
                int(a.memorySizeMB),
            )

        return _guard("nvmlDeviceGetAttributes", read)
