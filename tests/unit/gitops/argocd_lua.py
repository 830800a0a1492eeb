"""Run Ballast's Argo CD health checks the way Argo CD does: Lua 5.1, ``obj`` in, ``hs`` out.

Argo CD evaluates ``health.lua`` in gopher-lua (Lua 5.1) with the live object
as the global ``obj`` (JSON decoded: objects and arrays become tables, null
fields are absent) and reads ``status`` and ``message`` from the table the
script returns. lupa's ``lua51`` module is the reference Lua 5.1. Argo CD's
sandbox offers no ``io``, ``os`` file access or ``require``; they are removed
here too, so a script that leans on them fails in the tests as it would there.

Also renders the ``argocd-cm`` snippet that docs/gitops.md shows, from the
files, so the docs cannot drift from what is shipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lupa import lua51

ROOT = Path(__file__).resolve().parents[3]
HEALTH_DIR = ROOT / "deploy" / "argocd" / "health" / "ballast.dev"
KINDS = ("WorkloadClass", "GPUQuota", "BatchWindow")
HEALTH_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
_UNSAFE = ("io", "os", "require", "dofile", "loadfile", "package", "debug")


def script(kind: str) -> str:
    """The shipped health check of ``kind``."""
    return (HEALTH_DIR / kind / "health.lua").read_text(encoding="utf-8")


def health(kind: str, obj: dict[str, Any]) -> dict[str, str]:
    """Evaluate ``kind``'s health check on ``obj``; returns ``{"status", "message"}``."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    env = lua.globals()
    for name in _UNSAFE:
        env[name] = None
    env.obj = lua.table_from(_drop_nulls(obj), recursive=True)
    hs = lua.execute(script(kind))
    result = {"status": hs["status"], "message": hs["message"]}
    assert result["status"] in HEALTH_STATUSES, result
    assert isinstance(result["message"], str), result
    return result


def _drop_nulls(value: Any) -> Any:
    """JSON null is an absent field to Argo CD's Lua (nil), not a value."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def argocd_cm_snippet() -> str:
    """The ``argocd-cm`` ConfigMap carrying the three checks, as docs/gitops.md shows it."""
    lines = [
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata:",
        "  name: argocd-cm",
        "  namespace: argocd",
        "  labels:",
        "    app.kubernetes.io/part-of: argocd",
        "data:",
    ]
    for kind in KINDS:
        lines.append(f"  resource.customizations.health.ballast.dev_{kind}: |")
        lines.extend(f"    {line}" if line else "" for line in script(kind).splitlines())
    return "\n".join(lines) + "\n"
