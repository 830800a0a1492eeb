"""A WorkloadClass whose Ready condition another status writer dropped is reconciled again."""

from __future__ import annotations

from ballast.controller.handlers.workloadclass import ready_lost

SLO = {"type": "SLOMet", "status": "Unknown", "reason": "NoData"}
READY = {"type": "Ready", "status": "True", "reason": "Reconciled"}


def test_ready_dropped_after_reconcile_is_restored() -> None:
    meta = {"generation": 1}
    assert ready_lost({"observedGeneration": 1, "conditions": [SLO]}, meta)
    assert not ready_lost({"observedGeneration": 1, "conditions": [SLO, READY]}, meta)


def test_not_while_a_change_is_reconciled_or_the_class_goes() -> None:
    assert not ready_lost({}, {"generation": 1})  # never reconciled: the create handler runs
    assert not ready_lost({"observedGeneration": 1, "conditions": []}, {"generation": 2})
    gone = {"generation": 1, "deletionTimestamp": "2026-12-01T00:00:00Z"}
    assert not ready_lost({"observedGeneration": 1, "conditions": [SLO]}, gone)
