"""Columnar helpers for the snapshot: growable arrays and interned label values.

Label filters (pool, node selector, affinity, residency) compare small integers
over all candidate nodes at once instead of looking up strings node by node.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from ballast.placement.objects import Taint

ABSENT = -1  # the node has no such label
UNKNOWN = -2  # a value no node carries: never equal to a column entry

I32 = npt.NDArray[np.int32]


def grow(arr: npt.NDArray[np.generic], size: int, fill: object = 0) -> npt.NDArray[np.generic]:
    """Return ``arr`` enlarged along axis 0 to ``size`` rows, new rows set to ``fill``."""
    shape = (size, *arr.shape[1:])
    out = np.full(shape, fill, dtype=arr.dtype)
    out[: arr.shape[0]] = arr
    return out


class LabelColumns:
    """One int32 column per label key; values interned per key."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._cols: dict[str, I32] = {}
        self._values: dict[str, dict[str, int]] = {}

    def resize(self, capacity: int) -> None:
        """Grow every column to ``capacity`` rows."""
        for key, col in self._cols.items():
            self._cols[key] = grow(col, capacity, ABSENT)  # type: ignore[assignment]
        self._capacity = capacity

    def set_row(self, row: int, labels: Mapping[str, str]) -> None:
        """Replace the labels of ``row``."""
        for key, old in self._cols.items():
            if key not in labels:
                old[row] = ABSENT
        for key, value in labels.items():
            col = self._cols.get(key)
            if col is None:
                col = self._cols[key] = np.full(self._capacity, ABSENT, dtype=np.int32)
                self._values[key] = {}
            ids = self._values[key]
            vid = ids.get(value)
            if vid is None:
                vid = ids[value] = len(ids)
            col[row] = vid

    def clear_row(self, row: int) -> None:
        """Forget every label of ``row``."""
        for col in self._cols.values():
            col[row] = ABSENT

    def column(self, key: str) -> I32 | None:
        """The value-id column for ``key``, or None when no node ever had it."""
        return self._cols.get(key)

    def value_id(self, key: str, value: str) -> int:
        """The id of ``value`` under ``key``; ``UNKNOWN`` when no node carries it."""
        return self._values.get(key, {}).get(value, UNKNOWN)

    def value_ids(self, key: str, values: tuple[str, ...]) -> list[int]:
        """Ids of the known ``values`` under ``key`` (unknown ones dropped)."""
        ids = self._values.get(key, {})
        return [ids[v] for v in values if v in ids]

    def value_name(self, key: str, vid: int) -> str:
        """Reverse lookup (slow; for explanations and tests)."""
        for name, i in self._values.get(key, {}).items():
            if i == vid:
                return name
        return ""

    def get(self, row: int) -> dict[str, str]:
        """The labels of ``row`` as a dict (slow; for explanations and tests)."""
        out: dict[str, str] = {}
        for key, col in self._cols.items():
            vid = int(col[row])
            if vid >= 0:
                out[key] = self.value_name(key, vid)
        return out


class TaintSets:
    """Interned tuples of hard taints (NoSchedule/NoExecute); id 0 is 'no taints'."""

    def __init__(self) -> None:
        self.sets: list[tuple[Taint, ...]] = [()]
        self._ids: dict[tuple[Taint, ...], int] = {(): 0}

    def intern(self, taints: tuple[Taint, ...]) -> int:
        """Return the id of the hard taints among ``taints``."""
        hard = tuple(sorted((t for t in taints if t.effect != "PreferNoSchedule"), key=repr))
        tid = self._ids.get(hard)
        if tid is None:
            tid = self._ids[hard] = len(self.sets)
            self.sets.append(hard)
        return tid
