"""Turn the pydantic API models into structural CustomResourceDefinitions.

Pydantic's JSON Schema is close to what the API server wants but not equal:
a structural schema has no ``$ref``, no ``anyOf`` for optional fields (it uses
``nullable``), no ``title``, and never both ``properties`` and
``additionalProperties``. This module does that translation; the models stay
the single source of truth, including CEL rules given as
``x-kubernetes-validations`` in ``json_schema_extra``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from ballast.api.wellknown import GROUP, VERSION

_DROP = {"title", "$defs"}


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of ``model`` (camelCase, refs inlined)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    result: dict[str, Any] = _convert(raw, defs)
    return result


def _convert(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_convert(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        merged = copy.deepcopy(target)
        # Field-level keys (description, default, extras) win over the type's.
        merged.update(node)
        if "x-kubernetes-validations" in target and "x-kubernetes-validations" in node:
            merged["x-kubernetes-validations"] = (
                target["x-kubernetes-validations"] + node["x-kubernetes-validations"]
            )
        node = merged
    if "anyOf" in node:
        options = node.pop("anyOf")
        non_null = [o for o in options if o != {"type": "null"}]
        if len(non_null) != 1:
            raise ValueError(f"unsupported union in API model: {options}")
        inner = _convert(non_null[0], defs)
        extras = {k: v for k, v in node.items()}
        if "x-kubernetes-validations" in inner and "x-kubernetes-validations" in extras:
            extras["x-kubernetes-validations"] = (
                inner["x-kubernetes-validations"] + extras["x-kubernetes-validations"]
            )
        node = {**inner, **extras}
        if len(non_null) != len(options):
            node["nullable"] = True
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "default" and value is None:
            continue
        if key == "properties":
            out[key] = {k: _convert(v, defs) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _convert(value, defs)
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            # pydantic writes JSON Schema's numeric form (gt=, lt=); the CRD dialect
            # (OpenAPI v3.0) takes the bound and a boolean flag.
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        else:
            out[key] = value
    if "properties" in out:
        out.pop("additionalProperties", None)
    if out.get("additionalProperties") is False:
        out.pop("additionalProperties")
    return out


@dataclass(frozen=True)
class PrinterColumn:
    """One ``kubectl get`` column."""

    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The CRD's additionalPrinterColumns entry."""
        col: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            col["description"] = self.description
        if self.priority:
            col["priority"] = self.priority
        return col


@dataclass(frozen=True)
class KindInfo:
    """What the generator needs to know about one kind beyond its model."""

    model: type[BaseModel]
    kind: str
    plural: str
    short_names: tuple[str, ...]
    columns: tuple[PrinterColumn, ...] = field(default_factory=tuple)

    @property
    def singular(self) -> str:
        """The lowercase singular name."""
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        """``<plural>.<group>``."""
        return f"{self.plural}.{GROUP}"


READY_COLUMN = PrinterColumn(
    "Ready", '.status.conditions[?(@.type=="Ready")].status', description="Ready condition"
)
REASON_COLUMN = PrinterColumn(
    "Reason",
    '.status.conditions[?(@.type=="Ready")].reason',
    description="Why Ready is what it is",
    priority=1,
)
AGE_COLUMN = PrinterColumn("Age", ".metadata.creationTimestamp", type="date")


def build_crd(info: KindInfo) -> dict[str, Any]:
    """The full CustomResourceDefinition for one kind."""
    schema = structural_schema(info.model)
    schema["properties"] = {
        "apiVersion": {"type": "string", "description": "Versioned schema of this object."},
        "kind": {"type": "string", "description": "REST resource this object represents."},
        "metadata": {"type": "object"},
        **schema["properties"],
    }
    schema["description"] = info.model.__doc__ or info.kind
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": info.crd_name,
            "labels": {"app.kubernetes.io/name": "ballast", "app.kubernetes.io/part-of": "ballast"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Cluster",
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": list(info.short_names),
                "categories": ["ballast"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [c.as_dict() for c in info.columns],
                }
            ],
        },
    }
