"""Fixtures for operator tests: CRDs installed and the real operator process running."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kutil import Kubectl

from ballast.kube.raw import Kube
from ballast.localcluster.ballast_procs import BallastProcess
from ballast.localcluster.binaries import resolve_bin_dir

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def kube(kubeconfig: Path) -> Iterator[Kube]:
    """A raw-JSON client on the test cluster."""
    client = Kube.connect(str(kubeconfig))
    yield client
    client.close()


@pytest.fixture(scope="session")
def kubectl(kubeconfig: Path) -> Kubectl:
    """kubectl bound to the test cluster."""
    return Kubectl(resolve_bin_dir() / "kubectl", kubeconfig)


@pytest.fixture(scope="session")
def crds(kubectl: Kubectl) -> None:
    """Install the generated CRDs and wait until they are served."""
    kubectl("apply", "-f", str(ROOT / "crds"))
    kubectl(
        "wait",
        "--for=condition=Established",
        "crd",
        "-l",
        "app.kubernetes.io/part-of=ballast",
        "--timeout=60s",
    )


@pytest.fixture(scope="session")
def operator(
    crds: None, kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BallastProcess]:
    """The real operator process for the whole session."""
    op = BallastProcess(
        "operator",
        ["operator"],
        kubeconfig,
        tmp_path_factory.mktemp("operator"),
        # Resync every 3 s so that reference checks converge quickly in tests.
        env={"BALLAST_RESYNC_SECONDS": "3"},
    )
    op.start()
    time.sleep(1.0)
    assert op.alive(), op.log_tail()
    yield op
    survived = op.alive()
    op.stop()
    # Bad input must never crash the operator: it is reported in conditions.
    assert survived, f"the operator exited during the tests:\n{op.log_tail()}"
