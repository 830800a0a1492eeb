"""The local cluster's Kubernetes API I/O: a client, and creating/deleting fake nodes in bulk.

Nodes are made with a plain ``create`` (server-side apply would drop
``status``, where capacity lives) from a thread pool, since benchmarks create
a thousand nodes at a time.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from ballast.api.wellknown import GPU_RESOURCE
from ballast.localcluster.nodes import NODE_SELECTOR, NodeSpec, build_node
from ballast.logs import kv

log = logging.getLogger(__name__)

WORKERS = 16


def api_client(kubeconfig: Path, pool_size: int = 32) -> client.ApiClient:
    """An ``ApiClient`` for ``kubeconfig`` whose connection pool fits ``pool_size`` threads."""
    configuration = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), client_configuration=configuration, persist_config=False
    )
    configuration.connection_pool_maxsize = pool_size
    return client.ApiClient(configuration)


@dataclass(frozen=True, slots=True)
class CreateResult:
    """What ``create_nodes`` did."""

    created: int
    existing: int
    seconds: float


def _create_one(core: Any, body: dict[str, Any]) -> bool:
    """Create one node; False when it already exists. Patch status if the create dropped it."""
    name = body["metadata"]["name"]
    try:
        resp = core.create_node(body, _preload_content=False)
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise
    created = orjson.loads(resp.data)
    if GPU_RESOURCE not in (created.get("status") or {}).get("capacity", {}):
        core.patch_node_status(name, {"status": body["status"]})
    return True


def create_nodes(
    api: client.ApiClient,
    specs: Sequence[NodeSpec],
    workers: int = WORKERS,
    observed_at: dt.datetime | None = None,
) -> CreateResult:
    """Create a Node for each spec (existing names are left as they are)."""
    started = time.monotonic()
    observed_at = observed_at or dt.datetime.now(dt.UTC)
    core = client.CoreV1Api(api)
    bodies = [build_node(s, observed_at) for s in specs]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        outcomes = list(pool.map(lambda b: _create_one(core, b), bodies))
    result = CreateResult(
        created=sum(outcomes),
        existing=len(outcomes) - sum(outcomes),
        seconds=round(time.monotonic() - started, 2),
    )
    log.info(
        "nodes created",
        extra=kv(created=result.created, existing=result.existing, seconds=result.seconds),
    )
    return result


def _list_nodes(api: client.ApiClient, label_selector: str) -> dict[str, dict[str, Any]]:
    """Nodes by name, as plain JSON (cheaper than the client's models for a thousand nodes)."""
    # With _preload_content=False the client returns the raw response, not the V1NodeList
    # its annotation promises.
    resp: Any = client.CoreV1Api(api).list_node(
        label_selector=label_selector, _preload_content=False
    )
    items: list[dict[str, Any]] = orjson.loads(resp.data)["items"]
    return {n["metadata"]["name"]: n for n in items}


def delete_nodes(
    api: client.ApiClient,
    names: Sequence[str] | None = None,
    label_selector: str = NODE_SELECTOR,
    workers: int = WORKERS,
) -> int:
    """Delete the named nodes, or all nodes matching ``label_selector``; returns how many."""
    core = client.CoreV1Api(api)
    if names is None:
        names = list(_list_nodes(api, label_selector))

    def delete(name: str) -> bool:
        try:
            core.delete_node(name)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        deleted = sum(pool.map(delete, names))
    log.info("nodes deleted", extra=kv(deleted=deleted))
    return deleted


def ready_nodes(api: client.ApiClient, label_selector: str = NODE_SELECTOR) -> set[str]:
    """Names of the matching nodes whose Ready condition is True."""
    ready: set[str] = set()
    for name, node in _list_nodes(api, label_selector).items():
        conditions = (node.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            ready.add(name)
    return ready


def wait_nodes_ready(
    api: client.ApiClient,
    names: Sequence[str],
    timeout_s: float = 120.0,
    label_selector: str = NODE_SELECTOR,
) -> bool:
    """Wait until kwok reports every named node Ready; False on timeout.

    Each look lists every node (about 20 MB of JSON at 5,000 nodes), so the
    pause between looks is at least four times what the last look took: the
    wait never takes more than a fifth of the API server and this process
    from kwok, which is what it waits on.
    """
    deadline = time.monotonic() + timeout_s
    wanted = set(names)
    while True:
        t0 = time.monotonic()
        missing = wanted - ready_nodes(api, label_selector)
        if not missing:
            return True
        took = time.monotonic() - t0
        if time.monotonic() > deadline:
            log.warning("nodes not ready", extra=kv(missing=len(missing), timeout_s=timeout_s))
            return False
        time.sleep(max(1.0, 4 * took))
