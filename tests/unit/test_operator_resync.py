"""The operator's resync: one loop that decides from the watches, and calls the API only for news."""

from __future__ import annotations

import asyncio
import datetime as dt
from types import SimpleNamespace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ballast.controller.handlers import disruption, scaling
from ballast.controller.resync import peering_paused, status_patch

NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)


class NoApi:
    """A Kube that must not be called."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected API call {name}")


def record(priority: int, seen_s_ago: float, lifetime: int = 15) -> dict[str, Any]:
    seen = (NOW - dt.timedelta(seconds=seen_s_ago)).isoformat()
    return {"priority": priority, "lifetime": lifetime, "lastseen": seen}


def test_paused_only_by_a_live_peer_of_higher_priority() -> None:
    assert not peering_paused(None, 100, NOW)
    assert not peering_paused({"status": {}}, 100, NOW)
    assert peering_paused({"status": {"b": record(200, 1)}}, 100, NOW)
    # Expired keep-alive (older than its lifetime): dead, as kopf treats it.
    assert not peering_paused({"status": {"b": record(200, 16)}}, 100, NOW)
    # Equal or lower priority never pauses (kopf warns about equals, runs both).
    assert not peering_paused({"status": {"a": record(100, 1), "c": record(50, 1)}}, 100, NOW)
    # Records a broken writer left behind are skipped, not fatal.
    broken = {"x": "garbage", "y": {"priority": "high"}, "z": {"priority": 300}}
    assert not peering_paused({"status": broken}, 100, NOW)
    assert not peering_paused({"status": ["not", "a", "map"]}, 100, NOW)


@given(
    mine=st.integers(-1000, 1000),
    peers=st.lists(st.tuples(st.integers(-1000, 1000), st.floats(0, 100)), max_size=5),
)
def test_paused_matches_kopfs_rule(mine: int, peers: list[tuple[int, float]]) -> None:
    status = {f"p{i}": record(p, ago) for i, (p, ago) in enumerate(peers)}
    expected = any(p > mine and ago < 15 for p, ago in peers)
    assert peering_paused({"status": status}, mine, NOW) is expected


def test_status_patch_only_when_something_differs() -> None:
    cond = {"type": "Ready", "status": "True", "lastTransitionTime": "t0"}
    obj = {
        "metadata": {"name": "c", "resourceVersion": "7"},
        "status": {"observedGeneration": 2, "conditions": [cond], "pool": "p"},
    }
    # Same values (fields the reconcile does not own are left alone): no write.
    assert status_patch(obj, {"observedGeneration": 2, "conditions": [cond]}) is None
    changed = {"observedGeneration": 3, "conditions": [cond]}
    assert status_patch(obj, changed) == {
        "metadata": {"resourceVersion": "7"},
        "status": changed,
    }
    assert status_patch({"metadata": {"resourceVersion": "1"}}, {"x": 1}) is not None


def indexes(**extra: Any) -> dict[str, Any]:
    entry = {"uid": "u1", "spec": {"tier": "Offline"}, "deleting": False, "conditions": ("Ready",)}
    return {"workloadclass_index": {"c": [entry]}, **extra}


def memo() -> Any:
    return SimpleNamespace(kube=NoApi(), clock=SimpleNamespace(now=lambda: NOW))


def test_a_class_without_pods_or_pdbs_costs_no_api_call() -> None:
    errors = asyncio.run(disruption.reconcile_class(memo(), indexes(), "c", force=True))
    assert errors == []


def test_a_class_with_a_pdb_in_the_watch_is_read_from_the_api() -> None:
    found = indexes(class_pdbs={"c": ["team-a"]})
    # The PDB must be looked at (to delete it): the API is called.
    errors = asyncio.run(disruption.reconcile_class(memo(), found, "c", force=True))
    assert errors and "unexpected API call" in errors[0]


def test_a_class_that_does_not_scale_costs_no_api_call() -> None:
    errors = asyncio.run(scaling.reconcile_class(memo(), indexes(), "c", force=True))
    assert errors == []


def test_scaling_leftovers_are_cleaned_through_the_api() -> None:
    # A ScaledObject of the class in the watch, or a ScalingReady to remove.
    for idx in (
        indexes(class_scaled_objects={"c": [("ns", "so")]}),
        {
            "workloadclass_index": {
                "c": [
                    {
                        "uid": "u1",
                        "spec": {"tier": "Offline"},
                        "deleting": False,
                        "conditions": ("Ready", "ScalingReady"),
                    }
                ]
            }
        },
    ):
        errors = asyncio.run(scaling.reconcile_class(memo(), idx, "c", force=True))
        assert errors and "unexpected API call" in errors[0]
