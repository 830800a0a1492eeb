"""Structured (key=value) logging shared by every Ballast process."""

from __future__ import annotations

import logging
import sys
from typing import Any


class KeyValueFormatter(logging.Formatter):
    """Render records as ``ts=... level=... logger=... msg="..." k=v``.

    Extra fields come from ``logger.info("msg", extra={"kv": {...}})`` so that
    log lines stay greppable and machine-parsable without a JSON dependency.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Format one record as a single key=value line."""
        parts = [
            f"ts={self.formatTime(record, '%Y-%m-%dT%H:%M:%S')}",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={_quote(record.getMessage())}",
        ]
        kv: dict[str, Any] = getattr(record, "kv", None) or {}
        parts.extend(f"{k}={_quote(str(v))}" for k, v in kv.items())
        if record.exc_info:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


def _quote(value: str) -> str:
    if value and all(c not in value for c in ' "=\n'):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def setup(level: str = "INFO") -> None:
    """Install the key=value formatter on the root logger (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_ballast", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    handler._ballast = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())


def kv(**fields: Any) -> dict[str, Any]:
    """Build the ``extra`` mapping for a structured log call: ``log.info("x", extra=kv(a=1))``."""
    return {"kv": fields}
