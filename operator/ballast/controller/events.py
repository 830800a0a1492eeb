"""Posting Kubernetes events about Ballast objects from inside kopf handlers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf


def post(obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """Queue an event on ``obj`` (a kopf body or a raw dict with metadata).

    kopf posts it in the background; a failed post is logged, never raised.
    """
    kopf.event(obj, type=type_, reason=reason, message=message[:1024])  # type: ignore[arg-type]
