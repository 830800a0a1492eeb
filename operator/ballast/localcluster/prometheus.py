"""Prometheus beside a local cluster: its configuration, command line and scrape targets.

Prometheus discovers Ballast's processes through files (``file_sd_configs``)
that Ballast writes when it starts them, so a scheduler, operator or node
agent started after Prometheus is scraped from its next file read on::

    <cluster>/prometheus/prometheus.yml          written at start
    <cluster>/prometheus/targets/<job>/<name>.json   one file per target
    <cluster>/prometheus/data/                   the TSDB, removed by ``down``

The jobs are :data:`JOBS` (``ballast-scheduler``, ``ballast-operator``,
``ballast-agent``, ``serving``) plus Prometheus itself. :func:`add_target` and
:func:`remove_target` change the target files atomically (a reader never
sees half a file). The rules come from :data:`RULES_FILE`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import yaml

from ballast.telemetry.assets import RULES_FILE

# ``serving``: stand-ins for serving engines (vLLM's series, labelled with the
# namespace and pod they describe, as a pod monitor would), for autoscaling.
JOBS: tuple[str, ...] = ("ballast-scheduler", "ballast-operator", "ballast-agent", "serving")
HONOR_LABELS = frozenset({"ballast-agent", "serving"})
SCRAPE_INTERVAL_S = 2.0  # short, so tests and the demo see data within seconds
REFRESH_INTERVAL_S = 2.0  # how often Prometheus re-reads the target files
RETENTION = "2h"  # a local cluster's TSDB stays small
_FILE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def root(cluster_root: Path) -> Path:
    """``<cluster>/prometheus``."""
    return cluster_root / "prometheus"


def config_path(cluster_root: Path) -> Path:
    """The generated ``prometheus.yml``."""
    return root(cluster_root) / "prometheus.yml"


def data_dir(cluster_root: Path) -> Path:
    """The TSDB folder."""
    return root(cluster_root) / "data"


def targets_dir(cluster_root: Path, job: str) -> Path:
    """The folder of one job's target files."""
    return root(cluster_root) / "targets" / job


def config(
    cluster_root: Path,
    port: int,
    rule_files: tuple[Path, ...] = (RULES_FILE,),
    scrape_interval_s: float = SCRAPE_INTERVAL_S,
) -> dict[str, Any]:
    """The ``prometheus.yml`` document: Prometheus itself plus one file_sd job per :data:`JOBS`."""
    interval = f"{scrape_interval_s:g}s"
    scrape: list[dict[str, Any]] = [
        {
            "job_name": "prometheus",
            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
        }
    ]
    for job in JOBS:
        scrape.append(
            {
                "job_name": job,
                "file_sd_configs": [
                    {
                        "files": [str(targets_dir(cluster_root, job) / "*.json")],
                        "refresh_interval": f"{REFRESH_INTERVAL_S:g}s",
                    }
                ],
                # dcgm-exporter's labels (Hostname, pod, ...) are the agent's own, and a
                # serving stand-in names its pod itself: keep them.
                "honor_labels": job in HONOR_LABELS,
            }
        )
    return {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": interval,
            "external_labels": {"cluster": cluster_root.name},
        },
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": scrape,
    }


def write_config(
    cluster_root: Path, port: int, scrape_interval_s: float = SCRAPE_INTERVAL_S
) -> Path:
    """Write ``prometheus.yml`` and create the target folders; returns the config path."""
    for job in JOBS:
        targets_dir(cluster_root, job).mkdir(parents=True, exist_ok=True)
    data_dir(cluster_root).mkdir(parents=True, exist_ok=True)
    path = config_path(cluster_root)
    doc = config(cluster_root, port, scrape_interval_s=scrape_interval_s)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def args(binary: Path, cluster_root: Path, port: int) -> list[str]:
    """The Prometheus command line: loopback only, the lifecycle API on (for reloads)."""
    return [
        str(binary),
        f"--config.file={config_path(cluster_root)}",
        f"--storage.tsdb.path={data_dir(cluster_root)}",
        f"--storage.tsdb.retention.time={RETENTION}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
        "--log.level=warn",
    ]


def health_url(port: int) -> str:
    """The URL whose 200 means Prometheus is ready to serve queries."""
    return f"http://127.0.0.1:{port}/-/ready"


def url(port: int) -> str:
    """The base URL of the Prometheus API and UI."""
    return f"http://127.0.0.1:{port}"


def add_target(
    cluster_root: Path,
    job: str,
    address: str,
    name: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> Path:
    """Have Prometheus scrape ``address`` (``host:port``) in ``job``; returns the target file.

    ``name`` (default: the address) names the file, so a restarted process
    replaces its own entry. Works whether or not Prometheus runs yet: it reads
    the folder when it starts and re-reads it every :data:`REFRESH_INTERVAL_S`.
    """
    if job not in JOBS:
        raise ValueError(f"unknown job {job!r}; one of {', '.join(JOBS)}")
    folder = targets_dir(cluster_root, job)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_FILE_NAME.sub('_', name or address)}.json"
    doc = [{"targets": [address], "labels": dict(labels or {})}]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(orjson.dumps(doc))
    os.replace(tmp, path)
    return path


def remove_target(cluster_root: Path, job: str, name: str) -> None:
    """Stop scraping the target that :func:`add_target` wrote under ``name``."""
    (targets_dir(cluster_root, job) / f"{_FILE_NAME.sub('_', name)}.json").unlink(missing_ok=True)


def targets(cluster_root: Path) -> dict[str, list[str]]:
    """The addresses in the target files, by job (what Prometheus will scrape)."""
    found: dict[str, list[str]] = {}
    for job in JOBS:
        for path in sorted(targets_dir(cluster_root, job).glob("*.json")):
            try:
                groups = orjson.loads(path.read_bytes())
            except (OSError, orjson.JSONDecodeError):
                continue
            found.setdefault(job, []).extend(t for g in groups for t in g.get("targets", []))
    return found
