"""Per-node model caches with LRU eviction, mirrored into the snapshot.

What the node agent would report in ``ballast.dev/cache-inventory``: a model
loaded on a node stays cached until space is needed for another, least
recently used first. Items in use by a running pod are never evicted; when
everything is pinned, a new item is loaded but not kept.
"""

from __future__ import annotations

from collections import Counter, OrderedDict

from ballast.api.wellknown import CacheItem
from ballast.placement.snapshot import Snapshot


class LRUCaches:
    """The caches of every node of a snapshot."""

    def __init__(self, snapshot: Snapshot, capacity_bytes: int) -> None:
        self.snapshot = snapshot
        self.capacity = capacity_bytes
        self._lru: dict[str, OrderedDict[str, int]] = {}
        self._used: dict[str, int] = {}
        self._pins: Counter[tuple[str, str]] = Counter()
        self.evictions = 0

    def has(self, node: str, key: str) -> bool:
        """Whether ``key`` is cached on ``node``."""
        return key in self._lru.get(node, {})

    def use(self, node: str, item: CacheItem) -> bool:
        """A pod starts using ``item`` on ``node``: returns True on a cache hit."""
        lru = self._lru.setdefault(node, OrderedDict())
        self._pins[(node, item.key)] += 1
        if item.key in lru:
            lru.move_to_end(item.key)
            return True
        used = self._used.get(node, 0)
        for old in list(lru):
            if used + item.bytes <= self.capacity:
                break
            if self._pins[(node, old)] > 0:
                continue
            used -= lru.pop(old)
            self.snapshot.cache_evict(node, old)
            self.evictions += 1
        if used + item.bytes <= self.capacity:
            lru[item.key] = item.bytes
            used += item.bytes
            self.snapshot.cache_put(node, item)
        self._used[node] = used
        return False

    def release(self, node: str, key: str) -> None:
        """A pod using ``key`` on ``node`` ended."""
        pin = (node, key)
        self._pins[pin] -= 1
        if self._pins[pin] <= 0:
            del self._pins[pin]
