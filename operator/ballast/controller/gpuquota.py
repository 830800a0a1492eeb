"""GPUQuota validation that the schema cannot express, as status conditions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from ballast.api.v1alpha1.gpuquota import GPUQuotaSpec
from ballast.controller.conditions import Cond, merge_conditions, ready_from
from ballast.controller.workloadclass import format_validation_error


def quota_status(
    name: str,
    spec: Mapping[str, Any],
    old_status: Mapping[str, Any] | None,
    generation: int | None,
    others: Mapping[str, Mapping[str, Any]],
    now: dt.datetime,
) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    """Status and events for quota ``name`` given the other quotas' specs.

    A namespace may belong to one quota only (otherwise which limit applies
    would depend on the order the scheduler saw them); the later-created
    quota is the one reported invalid by its caller's ordering in ``others``.
    """
    old = dict(old_status or {})
    parts: list[Cond] = []
    try:
        parsed = GPUQuotaSpec.model_validate(dict(spec))
    except ValidationError as exc:
        parts.append(Cond("SpecValid", False, "InvalidSpec", format_validation_error(exc)))
    else:
        parts.append(Cond("SpecValid", True, "Valid", "spec passed validation"))
        clashes = sorted(
            f"{ns} (also in GPUQuota {other})"
            for other, other_spec in others.items()
            if other != name
            for ns in set(parsed.namespaces) & set(other_spec.get("namespaces") or [])
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
                n for n, s in others.items() if s.get("cohort") == parsed.cohort and n != name
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
        old.get("conditions"), [*parts, ready], generation=generation, now=now
    )
    events = []
    old_ready = next((c for c in old.get("conditions") or () if c.get("type") == "Ready"), None)
    if ready.status is False and (old_ready is None or old_ready.get("reason") != ready.reason):
        events.append(("Warning", ready.reason, ready.message))
    return {"observedGeneration": generation, "conditions": conditions}, events
