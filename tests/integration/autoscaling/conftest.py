"""KEDA beside the session's cluster and Prometheus, and a serving stand-in they scrape."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ballast.localcluster import ClusterError, LocalCluster, MissingBinariesError
from ballast.localcluster.serving import ServingExporter


@pytest.fixture(scope="session")
def keda(prometheus: LocalCluster) -> LocalCluster:
    """The session's cluster with KEDA's operator and metrics API server (aggregation layer)."""
    try:
        prometheus.up(with_keda=True)
    except (MissingBinariesError, ClusterError) as exc:
        pytest.fail(f"KEDA did not start: run `make bins`.\n{exc}", pytrace=False)
    return prometheus


@pytest.fixture
def serving(prometheus: LocalCluster) -> Iterator[ServingExporter]:
    """vLLM's series with values the test sets, scraped by the session's Prometheus."""
    exporter = ServingExporter().start()
    name = f"serving-{exporter.port}"
    prometheus.add_scrape_target("serving", exporter.address, name)
    yield exporter
    prometheus.remove_scrape_target("serving", name)
    exporter.close()
