"""Paths of the Prometheus rules and the Grafana dashboard shipped inside the package.

They are package data, so ``ballast cluster up --prometheus`` loads the same
files from a checkout or an installed wheel, and the Helm chart can take them
from here (see docs/prometheus.md).
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
RULES_FILE = HERE / "rules" / "ballast.rules.yaml"  # a `groups:` list, PrometheusRule's spec
DASHBOARD_FILE = HERE / "dashboards" / "ballast.json"  # Grafana dashboard model
