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
    handler.addFilter(KopfRetryAtWarning())
    handler._ballast = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())


def kv(**fields: Any) -> dict[str, Any]:
    """Build the ``extra`` mapping for a structured log call: ``log.info("x", extra=kv(a=1))``."""
    return {"kv": fields}


class KopfSuccessAtDebug(logging.Filter):
    """Log kopf's per-handler success lines at debug, not info.

    kopf writes "Handler 'x' succeeded." for every handler run and "Creation
    is processed: 3 succeeded; 0 failed." for every cycle: at thousands of
    objects that is most of the operator's log and a measurable part of its
    CPU. Ballast's own loggers say what was done (``priorityclass synced``);
    kopf's failures and retries stay at their levels.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Demote a success line to debug; pass it only where debug is on."""
        if record.levelno != logging.INFO:
            return True
        msg = str(record.msg)
        success = (msg.startswith("Handler ") and msg.endswith(" succeeded.")) or (
            " is processed: " in msg and msg.endswith("; 0 failed.")
        )
        if not success:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


class KopfRetryAtWarning(logging.Filter):
    """Log kopf's "Request attempt #1/9 failed; will retry" at warning, not error.

    kopf logs every failed attempt of a request it will retry at error: an
    API server still starting ("storage is (re)initializing", 429) or a
    dropped connection would page whoever alerts on error lines. The last
    attempt ("failed; escalating") and everything else keep their levels.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Demote a retried attempt's line to warning; pass it where warning is on."""
        if record.levelno != logging.ERROR or not record.name.startswith("kopf"):
            return True
        msg = str(record.msg)
        if not (msg.startswith("Request attempt ") and "; will retry" in msg):
            return True
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return logging.getLogger().isEnabledFor(logging.WARNING)


def quiet_kopf_successes() -> None:
    """Install :class:`KopfSuccessAtDebug` on kopf's per-object logger (idempotent)."""
    objects = logging.getLogger("kopf.objects")
    if not any(isinstance(f, KopfSuccessAtDebug) for f in objects.filters):
        objects.addFilter(KopfSuccessAtDebug())
