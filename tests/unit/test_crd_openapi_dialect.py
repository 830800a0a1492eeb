"""Generated CRD schemas speak OpenAPI v3.0, the API server's dialect, not JSON Schema's."""

from __future__ import annotations

from typing import Any

import pytest

from ballast.api.crd import build_crd
from ballast.api.kinds import ALL_KINDS


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        out.append((path, node))
        for key, value in node.items():
            out.extend(_walk(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.extend(_walk(value, f"{path}[{i}]"))
    return out


@pytest.mark.parametrize("info", ALL_KINDS, ids=[k.kind for k in ALL_KINDS])
def test_exclusive_bounds_are_flags_next_to_their_bound(info: Any) -> None:
    schema = build_crd(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if flag in node and not path.endswith(".properties"):
                assert node[flag] is True and bound in node, f"{path}: {node}"
