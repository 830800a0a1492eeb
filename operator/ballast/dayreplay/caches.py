"""The nodes' model caches during a replay, as node agents would report them (pure).

A model a pod loads on a node stays cached there, least recently used
first out when room is needed; the driver writes each change into the
node's ``ballast.dev/cache-inventory`` annotation, where Ballast's scheduler
reads it (kube-scheduler does not). Whether a pod found its models cached
is decided at its bind from this book, for both schedulers alike.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from ballast.api.wellknown import CacheInventory, CacheItem


@dataclass(frozen=True, slots=True)
class Load:
    """What a bind cost: every model cached (hit), or the load seconds of the missing ones."""

    hit: bool
    load_s: float
    changed: bool  # the node's cache changed (its annotation must be rewritten)


class ModelCaches:
    """One LRU cache per node, ``capacity_bytes`` each."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity = capacity_bytes
        self._lru: dict[str, OrderedDict[str, int]] = {}

    def bind(
        self,
        node: str,
        models: tuple[str, ...],
        sizes: Mapping[str, int],
        load_s: Mapping[str, float],
    ) -> Load:
        """A pod using ``models`` starts on ``node``."""
        lru = self._lru.setdefault(node, OrderedDict())
        missing = [m for m in models if m not in lru]
        for m in models:
            if m in lru:
                lru.move_to_end(m)
        for m in missing:
            size = sizes.get(m, 0)
            if size > self.capacity:
                continue
            while lru and sum(lru.values()) + size > self.capacity:
                lru.popitem(last=False)
            lru[m] = size
        return Load(not missing, sum(load_s.get(m, 0.0) for m in missing), bool(missing))

    def inventory(self, node: str) -> CacheInventory:
        """The node's cache as its annotation holds it."""
        items = tuple(CacheItem("model", m, b) for m, b in self._lru.get(node, {}).items())
        return CacheInventory(self.capacity, items)
