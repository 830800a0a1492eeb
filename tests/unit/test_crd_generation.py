"""The generated CRDs: structural, documented, and equal to what is committed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ballast.api.crd import build_crd
from ballast.api.generate import DEFAULT_TARGETS, render_all
from ballast.api.kinds import ALL_KINDS

ROOT = Path(__file__).resolve().parents[2]


def walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = []
    if isinstance(node, dict):
        if "type" in node or "properties" in node:
            out.append((path, node))
        for key in ("properties",):
            for name, child in (node.get(key) or {}).items():
                out += walk(child, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            out += walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            out += walk(node["additionalProperties"], f"{path}{{}}")
    return out


@pytest.mark.parametrize("info", ALL_KINDS, ids=[k.kind for k in ALL_KINDS])
def test_schema_is_structural_and_documented(info: Any) -> None:
    crd = build_crd(info)
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    text = yaml.safe_dump(schema)
    for forbidden in ("$ref", "anyOf", "title:", "$defs"):
        assert forbidden not in text, forbidden
    for path, node in walk(schema):
        assert "type" in node, f"{path} has no type"
        if path.count(".") >= 2 and not path.endswith("[]") and not path.endswith("{}"):
            assert node.get("description"), f"{path} has no description"
        assert not ("properties" in node and "additionalProperties" in node), path
    assert crd["spec"]["scope"] == "Cluster"
    assert crd["spec"]["versions"][0]["subresources"] == {"status": {}}
    assert crd["spec"]["names"]["shortNames"]


def test_cel_rules_present() -> None:
    text = yaml.safe_dump([build_crd(k) for k in ALL_KINDS])
    assert "an Offline class cannot preempt" in text
    assert "reserving nodes or GPUs needs a pool name" in text
    assert "timeZone must be an IANA time zone name" in text
    assert "lendingLimit cannot exceed gpus" in text


def test_committed_files_match_generator() -> None:
    rendered = render_all()
    for target in DEFAULT_TARGETS:
        for name, text in rendered.items():
            path = ROOT / target / name
            assert path.exists(), f"{path} missing: run `make generate`"
            assert path.read_text() == text, f"{path} is stale: run `make generate`"


@pytest.mark.parametrize("info", ALL_KINDS, ids=[k.kind for k in ALL_KINDS])
def test_every_string_list_and_map_is_bounded(info: Any) -> None:
    """Bounds keep CEL within the API server's cost budget and objects small."""
    schema = build_crd(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    # A kind without a spec (GPUNodeTelemetry: the record is its status) is checked on status.
    part = "spec" if "spec" in schema["properties"] else "status"
    for path, node in walk(schema["properties"][part], f".{part}"):
        if node.get("type") == "string" and "enum" not in node:
            assert "maxLength" in node, f"{path} has no maxLength"
        if node.get("type") == "array":
            assert "maxItems" in node, f"{path} has no maxItems"
        if node.get("type") == "object" and "additionalProperties" in node:
            assert "maxProperties" in node, f"{path} has no maxProperties"


def test_tenant_input_rules_present() -> None:
    text = yaml.safe_dump([build_crd(k) for k in ALL_KINDS])
    assert "a class limit cannot exceed the overall gpus limit" in text
    assert "In and NotIn need at least one value" in text
    assert "Exists and DoesNotExist take no values" in text
    assert "start must be between 1970-01-01 and 2199-12-31" in text
