"""Status conditions: pure helpers that keep metav1.Condition semantics.

``lastTransitionTime`` changes only when ``status`` changes, so re-reconciling
an unchanged object writes an identical status (no churn, no watch events).

Besides ``Ready`` (positive polarity: True is good), every kind carries the
two conditions kstatus reads (``sigs.k8s.io/cli-utils/pkg/kstatus``, which
Flux's health checks use): ``Reconciling`` and ``Stalled``, abnormal-true.
kstatus never looks at ``Ready``; without these a ``Ready=False`` object
would count as Current. See docs/gitops.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Cond:
    """A condition the operator wants to report."""

    type: str
    status: bool | None  # None -> "Unknown"
    reason: str
    message: str = ""
    # For a False condition: the operator expects it to clear by itself (it is
    # retrying, or waiting for another object to appear), so the object is
    # Reconciling rather than Stalled. A user's change is needed otherwise.
    progressing: bool = False

    @property
    def status_text(self) -> str:
        """The wire form: True, False or Unknown."""
        return "Unknown" if self.status is None else ("True" if self.status else "False")


def rfc3339(t: dt.datetime) -> str:
    """Second-precision UTC timestamp as Kubernetes writes them."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_conditions(
    old: Iterable[Mapping[str, Any]] | None,
    new: Iterable[Cond],
    *,
    generation: int | None,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """Return the full condition list: ``new`` applied over ``old``.

    Conditions not in ``new`` are kept as they were; a condition whose status
    did not change keeps its ``lastTransitionTime``.
    """
    by_type: dict[str, dict[str, Any]] = {c["type"]: dict(c) for c in old or () if "type" in c}
    for c in new:
        prev = by_type.get(c.type)
        changed = prev is None or prev.get("status") != c.status_text
        by_type[c.type] = {
            "type": c.type,
            "status": c.status_text,
            "reason": c.reason,
            "message": c.message,
            "lastTransitionTime": rfc3339(now)
            if changed or prev is None or not prev.get("lastTransitionTime")
            else prev["lastTransitionTime"],
            "observedGeneration": generation,
        }
    order = {"Ready": 0}
    return sorted(by_type.values(), key=lambda c: (order.get(c["type"], 1), c["type"]))


def ready_from(parts: Iterable[Cond]) -> Cond:
    """Summarise sub-conditions into Ready: the first False one explains it."""
    parts = list(parts)
    for c in parts:
        if c.status is False:
            return Cond("Ready", False, c.reason, c.message, progressing=c.progressing)
    for c in parts:
        if c.status is None:
            return Cond("Ready", None, c.reason, c.message)
    return Cond("Ready", True, "Reconciled", "all sub-conditions are True")


def kstatus_conditions(ready: Cond) -> list[Cond]:
    """``Reconciling`` and ``Stalled`` (abnormal-true, as kstatus reads them) from ``Ready``.

    Ready True: both False. Ready Unknown, or False on a condition marked
    ``progressing``: Reconciling True with Ready's reason and message. Ready
    False otherwise: Stalled True (kstatus: Failed) with them.
    """
    if ready.status is True:
        return [
            Cond("Reconciling", False, "Reconciled", "nothing left to do"),
            Cond("Stalled", False, "Reconciled", "no problem to report"),
        ]
    if ready.status is None or ready.progressing:
        return [
            Cond("Reconciling", True, ready.reason, ready.message),
            Cond("Stalled", False, ready.reason, "the operator is retrying or waiting"),
        ]
    return [
        Cond("Reconciling", False, ready.reason, "waiting for a change to the spec or the cluster"),
        Cond("Stalled", True, ready.reason, ready.message),
    ]
