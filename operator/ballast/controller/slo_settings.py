"""Settings of the SLO reader and the rules it produces (docs/slo.md), from the environment.

``ballast operator`` turns its flags (``--prometheus-url``, ``--slo-interval``,
``--slo-window``, ``--slo-rules-namespace``) into these variables before the
handlers are imported, which read the interval at import. The Helm chart may
set the variables directly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ballast.telemetry.slo_queries import format_duration, parse_duration

ENV_PROMETHEUS_URL = "BALLAST_PROMETHEUS_URL"
ENV_SLO_INTERVAL = "BALLAST_SLO_INTERVAL_SECONDS"
ENV_SLO_WINDOW = "BALLAST_SLO_WINDOW"
ENV_RULES_NAMESPACE = "BALLAST_SLO_RULES_NAMESPACE"
DEFAULT_INTERVAL_SECONDS = 30.0
DEFAULT_WINDOW = "1h"
DEFAULT_NAMESPACE = "ballast-system"
# One query must not hold a reader (and a worker thread) for long; Prometheus
# that slow counts as unreachable for that round.
QUERY_TIMEOUT_SECONDS = 10.0
# The ConfigMap with every class's burn-rate rules, and its key.
RULES_CONFIGMAP = "ballast-slo-rules"
RULES_KEY = "ballast-slo.rules.yaml"


def interval_seconds() -> float:
    """How often each class's SLO is read (at least 1 s)."""
    raw = os.environ.get(ENV_SLO_INTERVAL) or ""
    try:
        return max(1.0, float(raw)) if raw else DEFAULT_INTERVAL_SECONDS
    except ValueError:
        return DEFAULT_INTERVAL_SECONDS


@dataclass(frozen=True, slots=True)
class SloSettings:
    """Where Prometheus is, the window read, and where the rules go."""

    prometheus_url: str | None
    window: str = DEFAULT_WINDOW
    window_s: float = 3600.0
    rules_namespace: str = DEFAULT_NAMESPACE
    query_timeout_s: float = QUERY_TIMEOUT_SECONDS

    @classmethod
    def from_env(cls) -> SloSettings:
        """Read the variables; a bad window raises ValueError (the CLI checked it already)."""
        window_s = parse_duration(os.environ.get(ENV_SLO_WINDOW) or DEFAULT_WINDOW)
        return cls(
            prometheus_url=(os.environ.get(ENV_PROMETHEUS_URL) or "").strip() or None,
            window=format_duration(window_s),
            window_s=window_s,
            rules_namespace=os.environ.get(ENV_RULES_NAMESPACE) or DEFAULT_NAMESPACE,
        )
