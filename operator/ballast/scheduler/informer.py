"""List+watch streams feeding one event queue (the informer pattern, raw JSON).

One thread per resource: list, hand every object to the queue as a
``SYNC`` event, then watch from the list's resourceVersion, restarting with
a fresh list on ``410 Gone`` or a broken stream. Objects are plain dicts
decoded by orjson; nothing is deserialised into typed models. An informer
may *transform* each object before it is queued (client-go's
``SetTransform``): the pods informer keeps only the fields the scheduler
reads, so a queue holding thousands of pods (a list of 50,000 at start-up)
holds a third of the memory.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ballast.kube.raw import Kube, KubeError, Resource
from ballast.logs import kv

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    """One change: ``kind`` is the resource plural.

    ``type`` is a watch type (ADDED, MODIFIED, DELETED) or a list marker:
    RELIST (a full list starts), SYNC (one listed object), SYNCED (list done).
    """

    kind: str
    type: str
    obj: dict[str, Any]


class Informer(threading.Thread):
    """Keeps the consumer's view of one resource current."""

    def __init__(
        self,
        kube: Kube,
        resource: Resource,
        out: queue.Queue[Event],
        *,
        field_selector: str | None = None,
        label_selector: str | None = None,
        page_size: int = 2000,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(name=f"informer-{resource.plural}", daemon=True)
        self.kube = kube
        self.resource = resource
        self.out = out
        self.selectors = {"fieldSelector": field_selector, "labelSelector": label_selector}
        self.page_size = page_size
        self.transform = transform
        self.synced = threading.Event()
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the thread to end after its current watch request."""
        self._stop.set()

    def _list(self) -> str:
        # RELIST lets the consumer drop objects that vanished while it was not watching.
        self.out.put(Event(self.resource.plural, "RELIST", {}))
        cont: str | None = None
        rv = ""
        while True:
            page = self.kube.list(
                self.resource.path(), limit=self.page_size, **{"continue": cont}, **self.selectors
            )
            for item in page.get("items") or ():
                self.out.put(Event(self.resource.plural, "SYNC", self._shape(item)))
            meta = page.get("metadata") or {}
            rv = meta.get("resourceVersion", rv)
            cont = meta.get("continue")
            if not cont:
                return str(rv)

    def run(self) -> None:
        """List, then watch until stopped; relist on expiry or error."""
        backoff = 0.2
        while not self._stop.is_set():
            try:
                rv = self._list()
                self.out.put(Event(self.resource.plural, "SYNCED", {}))
                self.synced.set()
                backoff = 0.2
                while not self._stop.is_set():
                    rv = self._watch(rv)
                    if not rv:
                        break  # 410 Gone: relist
            except (KubeError, OSError, ValueError) as exc:
                if self._stop.is_set():
                    return
                log.warning(
                    "watch failed; relisting",
                    extra=kv(resource=self.resource.plural, error=exc, backoff=backoff),
                )
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            except Exception as exc:  # pragma: no cover - keep the stream alive whatever happens
                log.exception("informer error", extra=kv(resource=self.resource.plural, error=exc))
                time.sleep(1.0)

    def _shape(self, obj: dict[str, Any]) -> dict[str, Any]:
        """The object as queued: transformed, or as it came when the transform fails."""
        if self.transform is None:
            return obj
        try:
            return self.transform(obj)
        except Exception as exc:  # the consumer validates it again and reports it
            log.warning("transform failed", extra=kv(resource=self.resource.plural, error=exc))
            return obj

    def _watch(self, rv: str) -> str:
        for kind, obj in self.kube.watch(
            self.resource.path(), resource_version=rv, timeout_seconds=240, **self.selectors
        ):
            if kind == "ERROR":
                return ""  # usually 410 Gone: the caller relists
            new_rv = (obj.get("metadata") or {}).get("resourceVersion")
            if new_rv:
                rv = new_rv
            if kind != "BOOKMARK":
                self.out.put(Event(self.resource.plural, kind, self._shape(obj)))
            if self._stop.is_set():
                break
        return rv
