"""$BALLAST_FEATURE_GATES reaches the API server, controller manager and kube-scheduler."""

from __future__ import annotations

import pytest

from ballast.localcluster.components import FEATURE_GATES_ENV, feature_gate_args


def test_no_gates_no_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FEATURE_GATES_ENV, raising=False)
    assert feature_gate_args(apiserver=True) == []


def test_workload_api_gates_serve_the_beta_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FEATURE_GATES_ENV, "GenericWorkload=true,WorkloadWithJob=true")
    assert feature_gate_args() == ["--feature-gates=GenericWorkload=true,WorkloadWithJob=true"]
    assert feature_gate_args(apiserver=True)[1] == "--runtime-config=scheduling.k8s.io/v1beta1=true"
