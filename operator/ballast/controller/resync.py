"""The operator's safety-net resync: what it decides, pure (no I/O).

The loop itself lives in ``handlers/resync.py``. Here: whether this replica
is paused by a peer (kopf's own rule, read from the peering object), and the
status patch a class needs after a reconciliation.
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


def status_patch(obj: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge patch that writes ``status`` over the object's, or None when nothing differs.

    It carries the ``resourceVersion`` it was computed from, so a class
    changed meanwhile is not overwritten (its own change handler writes it).
    """
    old = obj.get("status") or {}
    if dict(old) | dict(status) == dict(old):
        return None
    return {
        "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
        "status": dict(status),
    }
