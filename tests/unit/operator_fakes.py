"""Fakes the operator-loop unit tests share: an API with the server's resourceVersion fence."""

from __future__ import annotations

import copy
import datetime as dt
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from ballast.clock import FakeClock
from ballast.kube.raw import GPUQUOTAS, WORKLOADCLASSES, KubeError

NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)
SLO = {"latencyP95Ms": 500, "latencyP99Ms": 1000}
READY = {"type": "Ready", "status": "True", "reason": "Reconciled", "observedGeneration": 1}


class NoApi:
    """A Kube that must not be called."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected API call {name}")


class FakeApi:
    """Cluster-scoped objects by path, with the API server's resourceVersion fence.

    ``refuse`` lists answers to give to the next status PATCHes instead
    (409 after bumping the object, as a writer in between would; 404).
    """

    def __init__(self, *objs: dict[str, Any]) -> None:
        self.objs: dict[str, dict[str, Any]] = {}
        self.rv = 100
        self.calls: list[tuple[str, str]] = []
        self.refuse: list[int] = []
        for obj in objs:
            self.put(obj)

    def put(self, obj: dict[str, Any]) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objs[self._path(obj)] = obj

    @staticmethod
    def _path(obj: dict[str, Any]) -> str:
        res = GPUQUOTAS if obj["kind"] == "GPUQuota" else WORKLOADCLASSES
        return res.path(obj["metadata"]["name"])

    def list(self, path: str, limit: int, **query: Any) -> dict[str, Any]:
        self.calls.append(("list", path))
        found = sorted((p, o) for p, o in self.objs.items() if p.startswith(path + "/"))
        start = int(query.get("continue") or 0)
        items = [copy.deepcopy(o) for _, o in found[start : start + limit]]
        more = start + limit < len(found)
        return {"items": items, "metadata": {"continue": str(start + limit) if more else None}}

    def get(self, path: str) -> dict[str, Any] | None:
        self.calls.append(("get", path))
        obj = self.objs.get(path)
        return copy.deepcopy(obj) if obj is not None else None

    def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("patch", path))
        path = path.removesuffix("/status")
        if self.refuse:
            status = self.refuse.pop(0)
            if status == 409:
                self.put(self.objs[path])
            raise KubeError(status, "refused", {"message": "refused"})
        obj = self.objs.get(path)
        if obj is None:
            raise KubeError(404, "NotFound", {})
        if body["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]:
            raise KubeError(409, "Conflict", {"message": "the object has been modified"})
        obj["status"] = merge(obj.get("status") or {}, body["status"])
        self.put(obj)
        return copy.deepcopy(obj)

    def apply(self, path: str, obj: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.calls.append(("apply", path))
        return obj


def merge(old: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(old)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict):
            out[k] = merge(out.get(k) if isinstance(out.get(k), dict) else {}, v)
        else:
            out[k] = v
    return out


def wlc(name: str, status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ballast.dev/v1alpha1",
        "kind": "WorkloadClass",
        "metadata": {"name": name, "uid": f"uid-{name}", "generation": 1},
        "spec": {"tier": "Interactive", **spec},
        "status": status
        if status is not None
        else {"observedGeneration": 1, "conditions": [READY]},
    }


def index_of(*objs: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """``workloadclass_index`` as kopf keeps it for these classes."""
    return {
        o["metadata"]["name"]: [
            {
                "uid": o["metadata"]["uid"],
                "spec": o["spec"],
                "deleting": bool(o["metadata"].get("deletionTimestamp")),
                "conditions": tuple(c["type"] for c in o["status"].get("conditions") or ()),
            }
        ]
        for o in objs
    }


def memo(kube: Any, settings: Any = None) -> Any:
    """The operator's memo as the loops read it."""
    return SimpleNamespace(kube=kube, clock=FakeClock(NOW), settings=settings)


def record_posts(
    monkeypatch: pytest.MonkeyPatch, *modules: ModuleType
) -> list[tuple[str, str, str]]:
    """(object, type, reason) of the events ``modules`` post (kopf's poster needs an operator)."""
    out: list[tuple[str, str, str]] = []

    def post(obj: Any, type_: str, reason: str, message: str) -> None:
        out.append((obj["metadata"]["name"], type_, reason))

    for module in modules:
        monkeypatch.setattr(module, "post", post)
    return out
