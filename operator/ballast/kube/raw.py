"""A raw-JSON Kubernetes client over the official client's transport.

The official client (v35+) deserialises every response into pydantic models.
That is convenient for rare calls and too slow for watch streams and the
scheduler loop, so Ballast talks to the API server through this thin layer:
the official client still loads kubeconfig / in-cluster credentials and owns
TLS and the connection pool; bodies are plain dicts decoded with orjson.
"""

from __future__ import annotations

import builtins
import os
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"

# What a request raises when the connection, TLS or a timeout fails (urllib3's own
# errors do not derive from OSError): callers that retry catch these and KubeError.
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (OSError, urllib3.exceptions.HTTPError)


class KubeError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(self, status: int, reason: str, body: Any) -> None:
        self.status = status
        self.reason = reason
        self.body = body
        message = body.get("message") if isinstance(body, dict) else str(body)[:500]
        super().__init__(f"{status} {reason}: {message}")

    @property
    def message(self) -> str:
        """The Status message the API server gave."""
        if isinstance(self.body, dict):
            return str(self.body.get("message", ""))
        return str(self.body)

    @property
    def not_found(self) -> bool:
        """404."""
        return self.status == 404

    @property
    def conflict(self) -> bool:
        """409 (already exists, or a resourceVersion/uid precondition failed)."""
        return self.status == 409


@dataclass(frozen=True, slots=True)
class Resource:
    """Where a kind lives in the REST tree."""

    group: str
    version: str
    plural: str
    namespaced: bool

    def path(
        self, name: str | None = None, namespace: str | None = None, sub: str | None = None
    ) -> str:
        """The URL path of the collection, an object, or its subresource."""
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if sub:
                base += f"/{sub}"
        return base


NODES = Resource("", "v1", "nodes", False)
PODS = Resource("", "v1", "pods", True)
NAMESPACES = Resource("", "v1", "namespaces", False)
EVENTS = Resource("events.k8s.io", "v1", "events", True)
PRIORITY_CLASSES = Resource("scheduling.k8s.io", "v1", "priorityclasses", False)
PDBS = Resource("policy", "v1", "poddisruptionbudgets", True)
LEASES = Resource("coordination.k8s.io", "v1", "leases", True)
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", False)
WORKLOADCLASSES = Resource("ballast.dev", "v1alpha1", "workloadclasses", False)
GPUQUOTAS = Resource("ballast.dev", "v1alpha1", "gpuquotas", False)
BATCHWINDOWS = Resource("ballast.dev", "v1alpha1", "batchwindows", False)
GPUNODETELEMETRIES = Resource("ballast.dev", "v1alpha1", "gpunodetelemetries", False)


class Kube:
    """Synchronous raw-JSON API calls. Thread-safe (urllib3 pool)."""

    def __init__(self, api_client: k8s.ApiClient) -> None:
        self.api = api_client

    @classmethod
    def connect(cls, kubeconfig: str | None = None, *, qps_pool: int = 32) -> Kube:
        """From a kubeconfig path, ``$KUBECONFIG``/``~/.kube/config``, or in-cluster."""
        configuration = k8s.Configuration()
        kubeconfig = kubeconfig or os.environ.get("KUBECONFIG") or None
        try:
            k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        except (k8s_config.ConfigException, FileNotFoundError, TypeError):
            if kubeconfig:
                raise
            k8s_config.load_incluster_config(client_configuration=configuration)
        configuration.connection_pool_maxsize = qps_pool
        return cls(k8s.ApiClient(configuration))

    def close(self) -> None:
        """Release the connection pool."""
        self.api.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: float | tuple[float, float] | None = 30.0,
        stream: bool = False,
        retries: bool | int | None = None,
    ) -> Any:
        """Send one request; returns decoded JSON (or the open response if ``stream``).

        ``timeout`` bounds connect plus each read (a float) or each separately (a
        pair). ``retries`` overrides urllib3's transparent retries, which resend
        idempotent requests (GET, PUT) after a read timeout and so multiply the
        time a call may take; callers with a deadline pass ``False`` and retry
        themselves.
        """
        url = self.api.configuration.host + path
        if query:
            url += "?" + urllib.parse.urlencode(
                {k: _q(v) for k, v in query.items() if v is not None}
            )
        headers = {"Accept": "application/json"}
        self.api.update_params_for_auth(headers, None, ["BearerToken"], path, method, body)
        payload: bytes | None = None
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
            payload = body.encode() if isinstance(body, str) else body
            if not isinstance(payload, bytes):
                payload = orjson.dumps(body)
        # Straight to urllib3: the generated REST layer re-serialises bodies by
        # content type (and turns a JSON patch it does not recognise into a
        # strategic merge patch), which is not what a raw client wants.
        extra: dict[str, Any] = {} if retries is None else {"retries": retries}
        resp = self.api.rest_client.pool_manager.request(
            method,
            url,
            body=payload,
            headers=headers,
            timeout=_timeout(timeout),
            preload_content=False,
            **extra,
        )
        if stream and 200 <= resp.status < 300:
            return resp
        data = resp.read()
        resp.release_conn()
        try:
            decoded = orjson.loads(data) if data else None
        except orjson.JSONDecodeError:
            decoded = data.decode(errors="replace")
        if not 200 <= resp.status < 300:
            raise KubeError(resp.status, str(resp.reason), decoded)
        return decoded

    # Convenience verbs -------------------------------------------------

    def get(self, path: str) -> dict[str, Any] | None:
        """GET an object; None when it does not exist."""
        try:
            result: dict[str, Any] = self.request("GET", path)
        except KubeError as exc:
            if exc.not_found:
                return None
            raise
        return result

    def list(self, path: str, **query: Any) -> dict[str, Any]:
        """GET a collection (``labelSelector=``, ``fieldSelector=``, ``limit=`` ...)."""
        result: dict[str, Any] = self.request("GET", path, query=query)
        return result

    def list_all(
        self, path: str, *, page_size: int = 500, **query: Any
    ) -> tuple[builtins.list[dict[str, Any]], str]:
        """Every item of a collection, in pages, and the list's resourceVersion.

        The pages of one list are one consistent read: a watch started from
        the returned resourceVersion misses nothing that came after it.
        """
        items: builtins.list[dict[str, Any]] = []
        query = {**query, "limit": page_size}
        while True:
            page = self.list(path, **query)
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                return items, str(meta.get("resourceVersion") or "")
            query["continue"] = meta["continue"]

    def create(self, path: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        """POST an object to a collection path."""
        result: dict[str, Any] = self.request("POST", path, body=obj)
        return result

    def apply(
        self, path: str, obj: Mapping[str, Any], *, field_manager: str, force: bool = True
    ) -> dict[str, Any]:
        """Server-side apply ``obj`` at its object path under ``field_manager``."""
        result: dict[str, Any] = self.request(
            "PATCH",
            path,
            query={"fieldManager": field_manager, "force": force},
            body=obj,
            content_type=APPLY,
        )
        return result

    def patch(
        self, path: str, patch: Any, *, content_type: str = MERGE, field_manager: str | None = None
    ) -> dict[str, Any]:
        """PATCH with a merge (default), strategic or JSON patch."""
        result: dict[str, Any] = self.request(
            "PATCH",
            path,
            query={"fieldManager": field_manager},
            body=patch,
            content_type=content_type,
        )
        return result

    def delete(
        self, path: str, *, uid: str | None = None, grace_seconds: int | None = None
    ) -> bool:
        """DELETE; with ``uid`` only that incarnation. False when already gone."""
        options: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if uid:
            options["preconditions"] = {"uid": uid}
        if grace_seconds is not None:
            options["gracePeriodSeconds"] = grace_seconds
        try:
            self.request("DELETE", path, body=options)
        except KubeError as exc:
            if exc.not_found:
                return False
            raise
        return True

    def watch(
        self,
        path: str,
        *,
        resource_version: str | None,
        timeout_seconds: int = 300,
        **query: Any,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(type, object)`` from one watch request until the server ends it.

        Callers handle ``ERROR`` events (410 Gone means: list again).
        """
        resp = self.request(
            "GET",
            path,
            query={
                "watch": "true",
                "resourceVersion": resource_version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": timeout_seconds,
                **query,
            },
            timeout=(10.0, timeout_seconds + 30.0),
            stream=True,
        )
        try:
            buffer = b""
            for chunk in resp.stream(64 * 1024, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        event = orjson.loads(line)
                        yield event.get("type", ""), event.get("object") or {}
        finally:
            resp.release_conn()


def _timeout(value: float | tuple[float, float] | None) -> urllib3.Timeout | None:
    if value is None:
        return None
    if isinstance(value, tuple):
        return urllib3.Timeout(connect=value[0], read=value[1])
    return urllib3.Timeout(total=value)


def _q(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
