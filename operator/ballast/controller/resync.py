"""What the operator's loops decide, pure (no I/O).

The loops live in ``handlers/`` (``resync.py``, ``slo.py``, ``gpuquota.py``,
sharing ``loops.py``). Here: whether this replica is paused by a peer (kopf's
own rule, read from the peering object), and the status patches they write,
fenced on the ``resourceVersion`` they were computed from.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any


def _parse_time(text: Any) -> dt.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def peering_paused(peering: Mapping[str, Any] | None, priority: int, now: dt.datetime) -> bool:
    """Whether a live peer with a higher priority than ``priority`` is in the peering object.

    kopf pauses a replica's handlers under exactly that condition (a peer's
    record is live until ``lastseen + lifetime``); a loop outside kopf's
    handlers applies it itself. A record that cannot be read counts as dead,
    as kopf would drop it.
    """
    records = (peering or {}).get("status")
    if not isinstance(records, Mapping):
        return False
    for record in records.values():
        if not isinstance(record, Mapping):
            continue
        try:
            their = int(record.get("priority", 0))
            lifetime = float(record.get("lifetime", 60))
        except (TypeError, ValueError):
            continue
        seen = _parse_time(record.get("lastseen"))
        if seen is None or their <= priority:
            continue
        if seen + dt.timedelta(seconds=lifetime) > now:
            return True
    return False


def fenced(obj: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch that applies ``status`` (itself a merge patch) to ``obj``'s status.

    It carries the ``resourceVersion`` it was computed from, so an object
    changed meanwhile is not overwritten: the API server answers 409 (its own
    change handler, or the next pass, writes it).
    """
    return {
        "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
        "status": dict(status),
    }


def status_patch(obj: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any] | None:
    """:func:`fenced` ``status`` over the object's, or None when nothing in it differs."""
    old = obj.get("status") or {}
    if dict(old) | dict(status) == dict(old):
        return None
    return fenced(obj, status)
