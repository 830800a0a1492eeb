"""``Kube.list_all`` against the real API server: every page, and a resourceVersion to watch from."""

from __future__ import annotations

from ballast.kube.raw import Kube


def test_list_all_reads_every_page_and_a_watch_from_its_version_misses_nothing(
    kube: Kube, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    for i in range(7):
        kube.create(path, {"metadata": {"name": f"cm-{i}"}, "data": {"i": str(i)}})
    items, rv = kube.list_all(path, page_size=3, labelSelector="")
    names = sorted(o["metadata"]["name"] for o in items if o["metadata"]["name"].startswith("cm-"))
    assert names == [f"cm-{i}" for i in range(7)]
    assert rv
    kube.create(path, {"metadata": {"name": "cm-late"}})
    seen = []
    for kind, obj in kube.watch(path, resource_version=rv, timeout_seconds=3):
        if kind != "BOOKMARK":
            seen.append((kind, obj["metadata"]["name"]))
        if obj["metadata"].get("name") == "cm-late":
            break
    assert seen == [("ADDED", "cm-late")]
