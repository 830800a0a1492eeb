"""Book-keeping the snapshot delegates: placements, node cache inventories, tenant usage."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ballast.api.wellknown import CacheInventory
from ballast.placement.objects import Tier


@dataclass(frozen=True, slots=True)
class Placement:
    """A pod running (or assumed) on a node, with what it holds there."""

    uid: str
    namespace: str
    name: str
    class_name: str
    tier: Tier
    priority: int
    node: str
    gpus: tuple[int, ...]
    milli_per_gpu: int
    cpu_milli: int
    memory_mib: int
    start_time: float
    labels: Mapping[str, str] = field(default_factory=dict)
    borrowed: bool = False
    spread_key: str = ""
    tenant: str = ""

    @property
    def tenant_key(self) -> str:
        """The quota tenant charged for this placement (the namespace when unset)."""
        return self.tenant or self.namespace

    @property
    def demand_milli(self) -> int:
        """GPU milli held in total."""
        return self.milli_per_gpu * len(self.gpus)


class NodeCaches:
    """Which models/datasets each node row has cached, and the reverse index."""

    def __init__(self) -> None:
        self._items: dict[int, dict[str, int]] = {}
        self._capacity: dict[int, int] = {}
        self._rows: dict[str, set[int]] = {}
        self._arrays: dict[str, npt.NDArray[np.int64]] = {}

    def replace(self, row: int, inventory: CacheInventory) -> None:
        """Set a row's whole inventory."""
        self.clear(row)
        self._capacity[row] = inventory.capacity_bytes
        for item in inventory.items:
            self.put(row, item.key, item.bytes)

    def put(self, row: int, key: str, size: int) -> None:
        """Record one cached item."""
        self._items.setdefault(row, {})[key] = size
        self._rows.setdefault(key, set()).add(row)
        self._arrays.pop(key, None)

    def evict(self, row: int, key: str) -> None:
        """Drop one item (no-op when absent)."""
        items = self._items.get(row)
        if items and key in items:
            del items[key]
            self._rows[key].discard(row)
            self._arrays.pop(key, None)

    def clear(self, row: int) -> None:
        """Forget a row's inventory."""
        for key in list(self._items.get(row, {})):
            self.evict(row, key)
        self._items.pop(row, None)
        self._capacity.pop(row, None)

    def items(self, row: int) -> Mapping[str, int]:
        """Cached items of a row: key → bytes."""
        return self._items.get(row, {})

    def capacity(self, row: int) -> int:
        """Declared cache capacity of a row in bytes (0 when unknown)."""
        return self._capacity.get(row, 0)

    def holders(self, key: str) -> npt.NDArray[np.int64]:
        """Sorted rows holding ``key`` (cached array; do not mutate)."""
        arr = self._arrays.get(key)
        if arr is None:
            arr = np.array(sorted(self._rows.get(key, ())), dtype=np.int64)
            self._arrays[key] = arr
        return arr

    def size_of(self, key: str) -> int:
        """Bytes of ``key`` as reported by any holder (0 when nobody holds it)."""
        for row in self._rows.get(key, ()):
            return self._items[row][key]
        return 0


@dataclass(slots=True)
class Usage:
    """GPU milli held by one tenant, in total and broken down."""

    total_milli: int = 0
    borrowed_milli: int = 0
    by_tier: dict[str, int] = field(default_factory=dict)
    by_class: dict[str, int] = field(default_factory=dict)

    def copy(self) -> Usage:
        """An independent copy."""
        return Usage(self.total_milli, self.borrowed_milli, dict(self.by_tier), dict(self.by_class))


_ZERO = Usage()


class UsageBook:
    """Tenant usage, charged and released as pods are assumed and forgotten."""

    def __init__(self) -> None:
        self._by_ns: dict[str, Usage] = {}

    def charge(
        self, namespace: str, tier: str, cls: str, milli: int, borrowed: bool, sign: int
    ) -> None:
        """Add (``sign=1``) or release (``sign=-1``) ``milli`` for a tenant."""
        u = self._by_ns.setdefault(namespace, Usage())
        u.total_milli += sign * milli
        if borrowed:
            u.borrowed_milli += sign * milli
        u.by_tier[tier] = u.by_tier.get(tier, 0) + sign * milli
        u.by_class[cls] = u.by_class.get(cls, 0) + sign * milli

    def peek(self, namespace: str) -> Usage:
        """The tenant's live usage record (do not mutate; zero when unknown)."""
        return self._by_ns.get(namespace) or _ZERO

    def total(self, namespace: str) -> int:
        """Total milli-GPUs the tenant holds."""
        u = self._by_ns.get(namespace)
        return u.total_milli if u else 0

    def get(self, namespace: str) -> Usage:
        """A copy of the tenant's usage (zero when unknown)."""
        u = self._by_ns.get(namespace)
        return u.copy() if u else Usage()
