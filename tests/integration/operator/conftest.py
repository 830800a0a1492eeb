"""Fixtures for operator tests: CRDs installed and the real operator process running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kutil import Kubectl

from ballast.kube.raw import Kube
from ballast.localcluster.binaries import resolve_bin_dir

ROOT = Path(__file__).resolve().parents[3]


class OperatorProcess:
    """``ballast operator`` as a child process, restartable and killable."""

    def __init__(self, kubeconfig: Path, log_path: Path) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it (resync every 3 s so reference checks converge quickly in tests)."""
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "BALLAST_RESYNC_SECONDS": "3"}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ballast", "operator"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def kill(self) -> None:
        """SIGKILL: no cleanup, as a crash or an OOM kill would do."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM and wait (kopf exits gracefully)."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """The end of its log, for assertion messages."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


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
) -> Iterator[OperatorProcess]:
    """The real operator process for the whole session."""
    op = OperatorProcess(kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log")
    op.start()
    time.sleep(1.0)
    assert op.alive(), op.log_tail()
    yield op
    survived = op.alive()
    op.stop()
    # Bad input must never crash the operator: it is reported in conditions.
    assert survived, f"the operator exited during the tests:\n{op.log_tail()}"
