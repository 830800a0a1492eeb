"""The sampling loop's one step: read every GPU through NVML, apply the health table.

``Collector.collect()`` is synchronous and takes its time from an injected
clock; the agent calls it every interval, tests call it directly. XID events
arrive from :class:`ballast.agent.events.XidWatcher` on another thread through
``on_xid``, which updates the GPU's health in the current snapshot at once and
tells the listeners (the record publisher), without waiting for the next
interval. Nothing here raises on bad NVML data: every failure is a counted
problem and the GPU (or the whole node) is reported accordingly.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ballast.agent import health
from ballast.agent.attribution import Owner
from ballast.agent.gpm import GpmReading, GpmSampler
from ballast.agent.mig import MigState
from ballast.agent.mig import read as read_mig
from ballast.clock import Clock
from ballast.logs import kv
from ballast.telemetry.nvml import (
    ERROR_UNINITIALIZED,
    Handle,
    Memory,
    Nvml,
    Problem,
    RemappedRows,
    XidEvent,
    handle_key,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
NODE = ""  # the ``gpu`` label of problems that are not about one GPU


@dataclass(frozen=True, slots=True)
class GPUSample:
    """One GPU at one collection; None where NVML gave no value."""

    index: int
    uuid: str
    name: str
    memory: Memory | None = None
    utilization_pct: int | None = None  # from GPM's graphics activity where the GPU offers it
    power_w: float | None = None
    temperature_c: int | None = None
    clock_reasons: int | None = None
    ecc_uncorrected: int | None = None
    remap: RemappedRows | None = None
    lost: bool = False
    last_xid: int = 0
    xid_count: int = 0
    health: health.Health = health.HEALTHY
    pods: tuple[Owner, ...] = ()  # who holds the GPU (ballast.agent.attribution), sorted
    gpm: GpmReading | None = None  # None: no GPM on this GPU, or its first collection
    mig: MigState | None = None  # None: the GPU has no MIG


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every GPU of the node at one instant."""

    observed_at: dt.datetime | None = None
    nvml_available: bool = False
    driver: str = ""
    gpus: tuple[GPUSample, ...] = ()
    collect_seconds: float = 0.0


@dataclass(slots=True)
class _GPUMemory:
    """What the collector keeps per GPU UUID between collections."""

    state: health.HealthState = dataclasses.field(default_factory=health.HealthState)
    last_xid: int = 0
    xid_count: int = 0
    lost: bool = False


class Collector:
    """Reads NVML into :class:`Snapshot` values; thread-safe for ``on_xid``."""

    def __init__(
        self,
        nvml: Nvml,
        clock: Clock,
        *,
        slowdown_sustain_s: float = health.DEFAULT_SLOWDOWN_SUSTAIN_S,
        init_backoff_s: tuple[float, float] = (1.0, 60.0),
    ) -> None:
        self.nvml = nvml
        self.clock = clock
        self.slowdown_sustain_s = slowdown_sustain_s
        self.init_backoff_s = init_backoff_s
        self.listeners: list[Callable[[Snapshot], None]] = []
        self._lock = threading.Lock()
        self._snapshot = Snapshot()
        self._initialized = False
        self._next_init = 0.0
        self._backoff = init_backoff_s[0]
        self._driver = ""
        self._gpus: dict[str, _GPUMemory] = {}
        self._names: dict[str, str] = {}
        self._unsupported: set[tuple[str, str]] = set()
        self._problems: Counter[tuple[str, str, int]] = Counter()
        self._handles: dict[int, tuple[Handle, int, str]] = {}
        self._pods: dict[str, tuple[Owner, ...]] = {}  # by GPU UUID, from set_pods
        self.generation = 0  # bumped when the set of GPU handles changes
        self.gpm = GpmSampler(nvml)

    # -- read side ---------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The latest snapshot."""
        with self._lock:
            return self._snapshot

    def problems(self) -> dict[tuple[str, str, int], int]:
        """Problem counts by (gpu index or "", NVML call, NVML code)."""
        with self._lock:
            return dict(self._problems)

    def handles(self) -> list[tuple[Handle, int, str]]:
        """(handle, index, uuid) of every GPU seen by the latest collection."""
        with self._lock:
            return list(self._handles.values())

    # -- problems ----------------------------------------------------------

    def record_problem(self, gpu: str, problem: Problem) -> None:
        """Count ``problem`` (and log it the first time for this gpu/call/code)."""
        key = (gpu, problem.call, problem.code)
        with self._lock:
            first = key not in self._problems
            self._problems[key] += 1
        if first:
            log.warning(
                "nvml call failed",
                extra=kv(
                    gpu=gpu or "-", call=problem.call, code=problem.code, error=problem.message
                ),
            )

    def _read(self, gpu: str, uuid: str, what: str, fn: Callable[[], T | Problem]) -> T | None:
        """One optional reading; NOT_SUPPORTED is recorded once and never asked again."""
        if (uuid, what) in self._unsupported:
            return None
        result = fn()
        if not isinstance(result, Problem):
            return result
        if result.unsupported:
            self._unsupported.add((uuid, what))
            self.record_problem(gpu, result)
        elif not result.gpu_lost:  # lost is reported once, as the GPU's state
            self.record_problem(gpu, result)
        else:
            raise _Lost
        return None

    # -- collection --------------------------------------------------------

    def _ensure_init(self, now: float) -> bool:
        if self._initialized:
            return True
        if now < self._next_init:
            return False
        problem = self.nvml.init()
        if problem is not None:
            self.record_problem(NODE, problem)
            self._next_init = now + self._backoff
            self._backoff = min(self._backoff * 2, self.init_backoff_s[1])
            return False
        self._initialized = True
        self._backoff = self.init_backoff_s[0]
        driver = self.nvml.driver_version()
        self._driver = driver if isinstance(driver, str) else ""
        log.info("nvml initialised", extra=kv(driver=self._driver or "unknown"))
        return True

    def collect(self) -> Snapshot:
        """Read every GPU once and publish the new snapshot."""
        start = self.clock.monotonic()
        gpus: list[GPUSample] = []
        handles: dict[int, tuple[Handle, int, str]] = {}
        available = self._ensure_init(start)
        if available:
            count = self.nvml.device_count()
            if isinstance(count, Problem):
                self.record_problem(NODE, count)
                available = False
                if count.code == ERROR_UNINITIALIZED:
                    self._initialized = False
            else:
                for index in range(count):
                    sample = self._sample(index, start, handles)
                    if sample is not None:
                        gpus.append(sample)
        self.gpm.retain({uuid for _, _, uuid in handles.values()})  # free vanished GPUs' samples
        elapsed = self.clock.monotonic() - start
        snap = Snapshot(self.clock.now(), available, self._driver, tuple(gpus), elapsed)
        with self._lock:
            if handles.keys() != self._handles.keys():
                self.generation += 1
            self._handles = handles
            self._snapshot = snap
        return snap

    def _sample(
        self, index: int, now: float, handles: dict[int, tuple[Handle, int, str]]
    ) -> GPUSample | None:
        gpu = str(index)
        h = self.nvml.handle(index)
        if isinstance(h, Problem):
            self.record_problem(gpu, h)
            return None  # not enumerable: it has gone
        uuid = self.nvml.uuid(h)
        if isinstance(uuid, Problem):
            if not uuid.gpu_lost:
                self.record_problem(gpu, uuid)
            uuid = f"index-{index}"
        mem = self._gpus.setdefault(uuid, _GPUMemory())
        handles[handle_key(h)] = (h, index, uuid)
        try:
            if uuid not in self._names:
                name = self._read(gpu, uuid, "name", lambda: self.nvml.name(h))
                self._names[uuid] = name or "unknown"
            power_mw = self._read(gpu, uuid, "power", lambda: self.nvml.power_mw(h))
            gpm = self._read(gpu, uuid, "gpm", lambda: self.gpm.read(uuid, h))
            if gpm is not None and gpm.graphics_pct is not None:
                util: int | None = round(gpm.graphics_pct)
            else:  # no GPM, or no rate yet (a GPU's first collection)
                util = self._read(gpu, uuid, "util", lambda: self.nvml.utilization_pct(h))
            sample = GPUSample(
                index=index,
                uuid=uuid,
                name=self._names[uuid],
                memory=self._read(gpu, uuid, "memory", lambda: self.nvml.memory(h)),
                utilization_pct=util,
                power_w=None if power_mw is None else power_mw / 1000.0,
                temperature_c=self._read(gpu, uuid, "temp", lambda: self.nvml.temperature_c(h)),
                clock_reasons=self._read(
                    gpu, uuid, "clocks", lambda: self.nvml.clock_event_reasons(h)
                ),
                ecc_uncorrected=self._read(
                    gpu, uuid, "ecc", lambda: self.nvml.ecc_uncorrected_volatile(h)
                ),
                remap=self._read(gpu, uuid, "remap", lambda: self.nvml.remapped_rows(h)),
                gpm=gpm,
                mig=self._mig(gpu, uuid, h),
            )
        except _Lost:
            self.gpm.restart(uuid)  # no rate across the time it did not answer
            sample = GPUSample(index=index, uuid=uuid, name=self._names.get(uuid, "unknown"))
            sample = dataclasses.replace(sample, lost=True)
        if sample.lost != mem.lost:
            mem.lost = sample.lost
            (log.error if sample.lost else log.info)(
                "gpu lost" if sample.lost else "gpu answers again", extra=kv(gpu=gpu, uuid=uuid)
            )
        signals = _signals(sample)
        mem.state = health.advance(mem.state, signals, now)
        verdict = health.evaluate(mem.state, signals, now, self.slowdown_sustain_s)
        return dataclasses.replace(
            sample,
            last_xid=mem.last_xid,
            xid_count=mem.xid_count,
            health=verdict,
            pods=self._pods.get(uuid, ()),
        )

    def _mig(self, gpu: str, uuid: str, h: Handle) -> MigState | None:
        result = self._read(gpu, uuid, "mig", lambda: read_mig(self.nvml, h))
        if result is None:
            return None
        state, problems = result
        for problem in problems:  # a MIG device gone mid-read is counted and skipped
            if problem.gpu_lost:
                raise _Lost
            self.record_problem(gpu, problem)
        return state

    def close(self) -> None:
        """Release what the collector holds in NVML (before ``nvmlShutdown``)."""
        self.gpm.close()

    # -- attribution -------------------------------------------------------

    def set_pods(self, by_uuid: dict[str, tuple[Owner, ...]]) -> bool:
        """Attribute GPUs to pods (by UUID) from now on; tell the listeners if that changed.

        Applied to the current snapshot at once and to every later
        collection, until the next call. Returns whether anything changed.
        """
        with self._lock:
            self._pods = dict(by_uuid)
            gpus = tuple(
                dataclasses.replace(g, pods=self._pods.get(g.uuid, ())) for g in self._snapshot.gpus
            )
            if gpus == self._snapshot.gpus:
                return False
            snap = dataclasses.replace(self._snapshot, gpus=gpus)
            self._snapshot = snap
        for listener in list(self.listeners):
            listener(snap)
        return True

    # -- events ------------------------------------------------------------

    def on_xid(self, event: XidEvent) -> None:
        """An XID arrived: update that GPU's health now and tell the listeners."""
        with self._lock:
            entry = self._handles.get(event.handle_key)
            if entry is None:
                return
            _, index, uuid = entry
            mem = self._gpus.setdefault(uuid, _GPUMemory())
            mem.last_xid = event.xid
            mem.xid_count += 1
            mem.state = health.record_xid(mem.state, event.xid)
            now = self.clock.monotonic()
            gpus = list(self._snapshot.gpus)
            for n, g in enumerate(gpus):
                if g.uuid == uuid:
                    verdict = health.evaluate(mem.state, _signals(g), now, self.slowdown_sustain_s)
                    gpus[n] = dataclasses.replace(
                        g, last_xid=mem.last_xid, xid_count=mem.xid_count, health=verdict
                    )
            snap = dataclasses.replace(self._snapshot, gpus=tuple(gpus))
            self._snapshot = snap
        level = logging.ERROR if health.is_fatal_xid(event.xid) else logging.WARNING
        log.log(level, "xid event", extra=kv(gpu=index, uuid=uuid, xid=event.xid))
        for listener in list(self.listeners):
            listener(snap)


class _Lost(Exception):
    """Internal: a call on this GPU answered GPU_IS_LOST."""


def _signals(sample: GPUSample) -> health.Signals:
    return health.Signals(
        lost=sample.lost,
        clock_reasons=sample.clock_reasons,
        ecc_uncorrected=sample.ecc_uncorrected,
        remap_pending=None if sample.remap is None else sample.remap.pending,
        remap_failure=None if sample.remap is None else sample.remap.failure,
    )
