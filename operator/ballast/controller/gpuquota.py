"""GPUQuota validation that the schema cannot express, as status conditions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from ballast.api.v1alpha1.common import format_validation_error
from ballast.api.v1alpha1.gpuquota import GPUQuotaSpec
from ballast.controller.conditions import Cond, kstatus_conditions, merge_conditions, ready_from
from ballast.tenancy import QuotaClaim, conflicts


def quota_status(
    name: str,
    spec: Mapping[str, Any],
    old_status: Mapping[str, Any] | None,
    generation: int | None,
    quotas: Mapping[str, Mapping[str, Any]],
    now: dt.datetime,
) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    """Status and events for quota ``name`` given every quota as stored (``metadata``, ``spec``).

    A namespace belongs to one quota only, decided by ``ballast.tenancy``
    (the oldest claim wins, ties by name), the same function the scheduler
    charges usage with: the quota that loses a namespace is
    ``Ready=False, NamespaceConflict``.
    """
    old = dict(old_status or {})
    parts: list[Cond] = []
    try:
        parsed = GPUQuotaSpec.model_validate(dict(spec))
    except ValidationError as exc:
        parts.append(Cond("SpecValid", False, "InvalidSpec", format_validation_error(exc)))
    else:
        parts.append(Cond("SpecValid", True, "Valid", "spec passed validation"))
        claims = [QuotaClaim.from_object(q) for q in quotas.values()]
        if not any(c.name == name for c in claims):
            claims.append(QuotaClaim.from_object({"metadata": {"name": name}, "spec": spec}))
        clashes = sorted(
            f"{ns} (owned by GPUQuota {owner}, an older claim)"
            for ns, owner in conflicts(name, claims).items()
        )
        if clashes:
            parts.append(
                Cond(
                    "NamespacesExclusive",
                    False,
                    "NamespaceConflict",
                    "each namespace may belong to one GPUQuota: " + ", ".join(clashes),
                )
            )
        else:
            parts.append(
                Cond("NamespacesExclusive", True, "NoConflict", "no namespace is in another quota")
            )
        if parsed.cohort:
            members = sorted(
                n
                for n, q in quotas.items()
                if (q.get("spec") or {}).get("cohort") == parsed.cohort and n != name
            )
            parts.append(
                Cond(
                    "CohortFormed",
                    True,
                    "Members" if members else "Alone",
                    f"cohort {parsed.cohort}: "
                    + (", ".join(members) if members else "no other member yet; nothing to borrow"),
                )
            )
    ready = ready_from(parts)
    conditions = merge_conditions(
        old.get("conditions"),
        [*parts, ready, *kstatus_conditions(ready)],
        generation=generation,
        now=now,
    )
    events = []
    old_ready = next((c for c in old.get("conditions") or () if c.get("type") == "Ready"), None)
    if ready.status is False and (old_ready is None or old_ready.get("reason") != ready.reason):
        events.append(("Warning", ready.reason, ready.message))
    return {"observedGeneration": generation, "conditions": conditions}, events
