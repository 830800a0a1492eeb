"""kstatus' generic rules, as Flux's health checks apply them to a custom resource.

From ``sigs.k8s.io/cli-utils/pkg/kstatus/status`` (``checkGenericProperties``
and ``Compute``): a deletion timestamp is Terminating; an
``observedGeneration`` that differs from ``metadata.generation`` is
InProgress; ``Reconciling=True`` is InProgress; ``Stalled=True`` is Failed;
anything else, including an object with no status at all, is Current.
``Ready`` is not read.
"""

from __future__ import annotations

from typing import Any


def kstatus(obj: dict[str, Any]) -> str:
    """InProgress, Failed, Current or Terminating, as kstatus computes it for a CR."""
    meta = obj.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return "Terminating"
    status = obj.get("status") or {}
    generation = meta.get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed is not None and observed != generation:
        return "InProgress"
    for c in status.get("conditions") or ():
        if c.get("type") == "Reconciling" and c.get("status") == "True":
            return "InProgress"
        if c.get("type") == "Stalled" and c.get("status") == "True":
            return "Failed"
    return "Current"
