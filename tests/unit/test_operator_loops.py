"""The operator's loops: one task each, no kopf finalizer, what a pass fetches, the quota resync."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from types import SimpleNamespace
from typing import Any

import kopf
import pytest
from operator_fakes import NOW, SLO, FakeApi, NoApi, index_of, memo, record_posts, wlc

import ballast.controller.handlers  # noqa: F401  (registers every handler with kopf)
from ballast.controller.handlers import gpuquota, loops, slo
from ballast.controller.slo_tick import may_want, plan
from ballast.kube.raw import GPUQUOTAS, WORKLOADCLASSES


@pytest.fixture
def posted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    return record_posts(monkeypatch, gpuquota)


# ------------------------------------------------------------------ no finalizer


def test_no_handler_makes_kopf_finalize_classes_or_quotas() -> None:
    """kopf adds its finalizer for timers, daemons and mandatory on.delete handlers only."""
    registry = kopf.get_default_registry()
    handlers = [*registry._spawning.get_all_handlers(), *registry._changing.get_all_handlers()]

    def kind(h: Any) -> str | None:  # as the decorators name it (kopf resolves it later)
        return None if h.selector is None else h.selector.plural or h.selector.any_name

    def finalizing(plural: str) -> list[str]:
        return [str(h.id) for h in handlers if kind(h) == plural and h.requires_finalizer]

    assert finalizing("workloadclasses") == []
    assert finalizing("gpuquotas") == []
    assert finalizing("batchwindows") == ["batchwindow_daemon"]  # kept on purpose
    # No timer or daemon for any other kind.
    assert {kind(h) for h in registry._spawning.get_all_handlers()} == {"batchwindows"}


def test_a_loop_starts_once_and_stops_with_the_operator() -> None:
    async def scenario() -> None:
        runs: list[int] = []

        async def one_pass() -> None:
            runs.append(1)

        def loop() -> Any:
            return loops.repeat("test", itertools.repeat(0.001), one_pass)

        loops.start("test", loop)
        task = loops._tasks["test"]
        loops.start("test", loop)  # the next event: the same task
        assert loops._tasks["test"] is task
        await asyncio.sleep(0.01)
        await loops.stop_loops()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled() and runs and not loops._tasks

    asyncio.run(scenario())


# ------------------------------------------------------------------ what a pass fetches


def test_may_want_from_an_index_entry() -> None:
    assert may_want({"slo": SLO}, ())
    assert may_want({"pricePerGPUHour": {"L4": 1.0}}, ())
    assert may_want({}, ("Ready", "SLOMet"))  # an slo that went: its condition to remove
    assert not may_want({"tier": "Offline"}, ("Ready",))


def test_plan_lists_first_then_fetches_only_candidates() -> None:
    plain = index_of(*(wlc(f"c{i}") for i in range(1200)))  # three pages of 500
    with_slo = {**plain, **index_of(wlc("s1", slo=SLO), wlc("s2", slo=SLO))}
    # After a start, every class is listed: only objects show leftover status.cost.
    assert plan(with_slo, set(), first=True, page=500) is None
    # No class asks and none was read last time: nothing is fetched at all.
    assert plan(plain, set(), first=False, page=500) == set()
    # A few candidates: a GET each (no more calls than the three LIST pages).
    assert plan(with_slo, {"c7"}, first=False, page=500) == {"s1", "s2", "c7"}
    # A class being deleted is not fetched.
    gone = wlc("s3", slo=SLO)
    gone["metadata"]["deletionTimestamp"] = "2026-12-02T11:00:00Z"
    assert plan({**plain, **index_of(gone)}, set(), first=False, page=500) == set()
    # More candidates than pages: one LIST is cheaper.
    many = index_of(*(wlc(f"s{i}", slo=SLO) for i in range(5)))
    assert plan(many, set(), first=False, page=500) is None


def test_pages_follow_the_continue_token() -> None:
    api = FakeApi(*(wlc(f"c{i}") for i in range(5)))
    got = [[o["metadata"]["name"] for o in page] for page in loops.pages(api, WORKLOADCLASSES, 2)]  # type: ignore[arg-type]
    assert got == [["c0", "c1"], ["c2", "c3"], ["c4"]]


def test_a_paused_replica_skips_the_pass() -> None:
    seen = (NOW - dt.timedelta(seconds=1)).isoformat()
    peering = {"status": {"other": {"priority": 200, "lifetime": 15, "lastseen": seen}}}

    class Peered(NoApi):
        def get(self, path: str) -> Any:
            assert "clusterkopfpeerings" in path
            return peering

    settings = SimpleNamespace(peering=SimpleNamespace(standalone=False, name="p", priority=100))
    state = slo.Passes()
    indexes = {"workloadclass_index": index_of(wlc("chat", slo=SLO))}
    assert asyncio.run(slo.slo_pass(memo(Peered(), settings), indexes, state)) == 0
    assert state.first  # the pass after the pause lists every class
    assert asyncio.run(gpuquota.resync_quotas(memo(Peered(), settings))) == 0


# ------------------------------------------------------------------ the GPUQuota loop


def quota(name: str, namespaces: list[str], created: str, status: Any = None) -> dict[str, Any]:
    return {
        "apiVersion": "ballast.dev/v1alpha1",
        "kind": "GPUQuota",
        "metadata": {"name": name, "uid": f"uid-{name}", "generation": 1,
                     "creationTimestamp": created},
        "spec": {"namespaces": namespaces, "gpus": 4},
        "status": status or {},
    }  # fmt: skip


def test_quota_resync_reports_a_conflict_another_quota_made(
    posted: list[tuple[str, str, str]],
) -> None:
    api = FakeApi(
        quota("a", ["team"], "2026-01-01T00:00:00Z"),
        quota("b", ["other"], "2026-01-02T00:00:00Z"),
    )
    m = memo(api)
    assert asyncio.run(gpuquota.resync_quotas(m)) == 2  # both Ready
    assert posted == []
    # Nothing changed: nothing written on the next pass.
    api.calls.clear()
    assert asyncio.run(gpuquota.resync_quotas(m)) == 0
    assert [v for v, _ in api.calls] == ["list"]
    # b now claims a's namespace (a change the timer used to catch): b is in conflict.
    b = api.objs[GPUQUOTAS.path("b")]
    b["spec"]["namespaces"] = ["team"]
    api.put(b)
    assert asyncio.run(gpuquota.resync_quotas(m)) == 1
    ready = next(c for c in b["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "NamespaceConflict")
    assert posted == [("b", "Warning", "NamespaceConflict")]


def test_quota_resync_posts_nothing_for_a_refused_write(
    posted: list[tuple[str, str, str]],
) -> None:
    api = FakeApi(
        quota("a", ["team"], "2026-01-01T00:00:00Z"),
        quota("b", ["team"], "2026-01-02T00:00:00Z"),
    )
    api.refuse = [409, 404]
    assert asyncio.run(gpuquota.resync_quotas(memo(api))) == 0
    assert posted == []  # the change handler (or the next pass) reports it
