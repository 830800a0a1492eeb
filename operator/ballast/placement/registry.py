"""Plugin registry: name → factory, an explicit list, duplicates refused.

Profiles refer to plugins by name; the engine asks the registry to build them
with the profile's arguments (validated by each plugin's pydantic ``Args``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ballast.placement.framework import FilterPlugin, ScorePlugin
from ballast.placement.plugins import (
    balanced_allocation,
    best_fit,
    data_locality,
    data_residency,
    fragmentation_gradient,
    gpu_fit,
    gpu_memory,
    gpu_model,
    gpu_scarcity,
    gpu_stranding,
    gpu_telemetry,
    least_allocated,
    most_allocated,
    node_affinity,
    node_health,
    node_name,
    node_pool,
    random_score,
    spread,
    taint_toleration,
)

RawArgs = Mapping[str, Any] | None
FilterFactory = Callable[[RawArgs], FilterPlugin]
ScoreFactory = Callable[[RawArgs], ScorePlugin]


class Registry:
    """Known filter and score plugins."""

    def __init__(self) -> None:
        self._filters: dict[str, FilterFactory] = {}
        self._scores: dict[str, ScoreFactory] = {}

    def _check(self, name: str) -> None:
        if name in self._filters or name in self._scores:
            raise ValueError(f"plugin {name!r} is already registered")

    def add_filter(self, name: str, factory: FilterFactory) -> None:
        """Register a filter plugin; a name may be registered once."""
        self._check(name)
        self._filters[name] = factory

    def add_score(self, name: str, factory: ScoreFactory) -> None:
        """Register a score plugin; a name may be registered once."""
        self._check(name)
        self._scores[name] = factory

    def filter(self, name: str, args: RawArgs = None) -> FilterPlugin:
        """Build filter ``name`` (KeyError when unknown, ValidationError on bad args)."""
        return self._filters[name](args)

    def score(self, name: str, args: RawArgs = None) -> ScorePlugin:
        """Build score plugin ``name`` (KeyError when unknown, ValidationError on bad args)."""
        return self._scores[name](args)

    @property
    def filters(self) -> tuple[str, ...]:
        """Registered filter names."""
        return tuple(self._filters)

    @property
    def scores(self) -> tuple[str, ...]:
        """Registered score names."""
        return tuple(self._scores)


def default_registry() -> Registry:
    """Every plugin Ballast ships, registered explicitly."""
    reg = Registry()
    reg.add_filter(node_health.NAME, node_health.factory)
    reg.add_filter(node_pool.NAME, node_pool.factory)
    reg.add_filter(taint_toleration.NAME, taint_toleration.factory)
    reg.add_filter(node_affinity.NAME, node_affinity.factory)
    reg.add_filter(data_residency.NAME, data_residency.factory)
    reg.add_filter(gpu_model.NAME, gpu_model.factory)
    reg.add_filter(gpu_memory.NAME, gpu_memory.factory)
    reg.add_filter(gpu_fit.NAME, gpu_fit.factory)
    reg.add_score(data_locality.NAME, data_locality.factory)
    reg.add_score(gpu_telemetry.NAME, gpu_telemetry.factory)
    reg.add_score(fragmentation_gradient.NAME, fragmentation_gradient.factory)
    reg.add_score(best_fit.NAME, best_fit.factory)
    reg.add_score(gpu_stranding.NAME, gpu_stranding.factory)
    reg.add_score(gpu_scarcity.NAME, gpu_scarcity.factory)
    reg.add_score(least_allocated.NAME, least_allocated.factory)
    reg.add_score(most_allocated.NAME, most_allocated.factory)
    reg.add_score(balanced_allocation.NAME, balanced_allocation.factory)
    reg.add_score(spread.NAME, spread.factory)
    reg.add_score(random_score.NAME, random_score.factory)
    reg.add_score(node_name.NAME, node_name.factory)
    return reg
