"""GPM (GPU Performance Monitoring, Hopper and later) utilisation for the collector.

GPM metrics are rates over the interval between two samples of the GPU's
counters. :class:`GpmSampler` keeps two sample buffers per GPU (by UUID) and
alternates between them: each collection takes a new sample into the older
buffer and asks NVML for the metrics between the previous sample and the new
one, so every reading covers exactly one collection interval. The first
collection of a GPU has no previous sample and yields no reading (the
collector falls back to ``nvmlDeviceGetUtilizationRates`` for it).

Whether a GPU offers GPM is asked once per GPU: a GPU that does not
(``isSupportedDevice`` 0, or a driver without the call) yields a
:class:`Problem` with ``ERROR_NOT_SUPPORTED``, which the collector records
once and never asks again. Buffers of GPUs that are gone are freed by
:meth:`GpmSampler.retain`, all of them by :meth:`GpmSampler.close`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ballast.telemetry.nvml import (
    ERROR_NOT_SUPPORTED,
    GPM_ANY_TENSOR_UTIL,
    GPM_DRAM_BW_UTIL,
    GPM_GRAPHICS_UTIL,
    GPM_SM_OCCUPANCY,
    GPM_SM_UTIL,
    GpmSample,
    Handle,
    Nvml,
    Problem,
)

METRICS = (
    GPM_GRAPHICS_UTIL,
    GPM_SM_UTIL,
    GPM_SM_OCCUPANCY,
    GPM_DRAM_BW_UTIL,
    GPM_ANY_TENSOR_UTIL,
)


@dataclass(frozen=True, slots=True)
class GpmReading:
    """GPM activity over one collection interval, percent (0-100); None where NVML gave none."""

    graphics_pct: float | None = None  # any graphics/compute engine active (GR_ENGINE_ACTIVE)
    sm_active_pct: float | None = None  # SMs busy (SM_ACTIVE)
    sm_occupancy_pct: float | None = None  # resident warps vs the maximum (SM_OCCUPANCY)
    dram_active_pct: float | None = None  # memory interface busy (DRAM_ACTIVE)
    tensor_active_pct: float | None = None  # any tensor pipe busy (PIPE_TENSOR_ACTIVE)


@dataclass(slots=True)
class _State:
    """Two sample buffers of one GPU; ``latest`` holds the newest sample, if any."""

    buffers: list[GpmSample] = field(default_factory=list)
    latest: int = 0
    filled: bool = False


def _clamp(value: float | None) -> float | None:
    return None if value is None else min(100.0, max(0.0, value))


class GpmSampler:
    """Per-GPU GPM sampling; used from the collection thread only."""

    def __init__(self, nvml: Nvml) -> None:
        self.nvml = nvml
        self._gpus: dict[str, _State] = {}

    def read(self, uuid: str, h: Handle) -> GpmReading | Problem | None:
        """Sample GPU ``h`` now; the reading since the previous sample, None on the first."""
        state = self._gpus.get(uuid)
        if state is None:
            supported = self.nvml.gpm_supported(h)
            if isinstance(supported, Problem):
                return supported
            if not supported:
                return Problem(
                    "nvmlGpmQueryDeviceSupport",
                    ERROR_NOT_SUPPORTED,
                    "GPM not supported on this GPU",
                )
            state = _State()
            for _ in range(2):
                sample = self.nvml.gpm_sample_alloc()
                if isinstance(sample, Problem):
                    self._free(state)
                    return sample
                state.buffers.append(sample)
            self._gpus[uuid] = state
        target = 1 - state.latest
        problem = self.nvml.gpm_sample_get(h, state.buffers[target])
        if problem is not None:
            state.filled = False  # the next reading starts from a fresh pair
            return problem
        previous, state.latest = state.latest, target
        if not state.filled:
            state.filled = True
            return None
        values = self.nvml.gpm_metrics(state.buffers[previous], state.buffers[target], METRICS)
        if isinstance(values, Problem):
            return values
        return GpmReading(
            graphics_pct=_clamp(values.get(GPM_GRAPHICS_UTIL)),
            sm_active_pct=_clamp(values.get(GPM_SM_UTIL)),
            sm_occupancy_pct=_clamp(values.get(GPM_SM_OCCUPANCY)),
            dram_active_pct=_clamp(values.get(GPM_DRAM_BW_UTIL)),
            tensor_active_pct=_clamp(values.get(GPM_ANY_TENSOR_UTIL)),
        )

    def restart(self, uuid: str) -> None:
        """Forget GPU ``uuid``'s last sample (it stopped answering): the next reading is fresh."""
        state = self._gpus.get(uuid)
        if state is not None:
            state.filled = False

    def retain(self, uuids: set[str]) -> None:
        """Free the buffers of every GPU not in ``uuids`` (gone since the last collection)."""
        for uuid in [u for u in self._gpus if u not in uuids]:
            self._free(self._gpus.pop(uuid))

    def close(self) -> None:
        """Free every buffer (before ``nvmlShutdown``)."""
        self.retain(set())

    def _free(self, state: _State) -> None:
        for sample in state.buffers:
            self.nvml.gpm_sample_free(sample)
        state.buffers.clear()
