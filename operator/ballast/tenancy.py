"""Which tenant a namespace belongs to: the one rule the operator and the scheduler share.

A namespace belongs to at most one GPUQuota. When several quotas list the
same namespace, the *oldest* quota (by ``metadata.creationTimestamp``, then
by name) keeps it; the operator reports the others ``NamespaceConflict`` and
the scheduler charges the namespace to the winner, so both processes agree
whatever order they saw the quotas in.

A namespace that no quota lists is not limited. It is still its own tenant
for accounting, under the key ``namespace/<name>``: a GPUQuota name is a DNS
subdomain and can never contain ``/``, so that key never collides with a
quota's name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

UNQUOTED_PREFIX = "namespace/"


@dataclass(frozen=True, slots=True)
class QuotaClaim:
    """The part of a GPUQuota that decides ownership of namespaces."""

    name: str
    created: str  # RFC 3339 creationTimestamp ("" sorts first: unknown is oldest)
    namespaces: tuple[str, ...]

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> QuotaClaim:
        """Read a raw GPUQuota; malformed fields become empty, never an exception."""
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        raw = spec.get("namespaces") if isinstance(spec, Mapping) else None
        namespaces = (
            tuple(n for n in raw or () if isinstance(n, str)) if isinstance(raw, list) else ()
        )
        created = meta.get("creationTimestamp")
        return cls(
            str(meta.get("name") or ""), created if isinstance(created, str) else "", namespaces
        )


def owners(claims: Iterable[QuotaClaim]) -> dict[str, str]:
    """Namespace → the name of the GPUQuota that owns it (oldest claim wins)."""
    out: dict[str, str] = {}
    # RFC 3339 timestamps in UTC ("...Z") sort as strings in time order.
    for claim in sorted(claims, key=lambda c: (c.created, c.name)):
        for ns in claim.namespaces:
            out.setdefault(ns, claim.name)
    return out


def tenant_of(namespace: str, owner_map: Mapping[str, str]) -> str:
    """The tenant key a namespace is charged to: its quota, or ``namespace/<ns>``."""
    return owner_map.get(namespace) or UNQUOTED_PREFIX + namespace


def conflicts(name: str, claims: Iterable[QuotaClaim]) -> dict[str, str]:
    """Namespaces that quota ``name`` lists but another (older) quota owns → that owner."""
    claims = list(claims)
    mine = next((c for c in claims if c.name == name), None)
    if mine is None:
        return {}
    owner_map = owners(claims)
    return {ns: owner_map[ns] for ns in mine.namespaces if owner_map.get(ns, name) != name}
