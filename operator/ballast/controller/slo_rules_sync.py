"""Where the burn-rate rules land: a ConfigMap always, PrometheusRules where served.

* ConfigMap ``ballast-slo-rules`` in the operator's namespace, key
  ``ballast-slo.rules.yaml``: one rule group per class with an ``slo``, for a
  Prometheus that loads rule files (mount it, list it in ``rule_files``).
  It spans classes, so it has no owner; it is rewritten whenever the set of
  rules changes, including when a class is deleted.
* ``PrometheusRule`` ``ballast-slo-<class>`` (monitoring.coreos.com/v1) in the
  same namespace when the API server serves that kind (prometheus-operator):
  one per class, owned by the class (garbage-collected with it), labelled,
  removed when the class drops its ``slo``.

Writes are server-side applies under Ballast's field manager, made only when
the desired object differs from what was last written or read (``verify``
re-reads, to restore a hand edit). See docs/slo.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from ballast.api.v1alpha1.workloadclass import WorkloadClassSpec
from ballast.api.wellknown import FIELD_MANAGER, LABEL_MANAGED_BY, MANAGED_BY
from ballast.controller.builders import bounded, owner_labels, owner_reference
from ballast.controller.slo_settings import RULES_CONFIGMAP, RULES_KEY
from ballast.kube.raw import Kube, KubeError, Resource
from ballast.logs import kv
from ballast.telemetry.slo_rules import dump, rules_file, rules_for

log = logging.getLogger(__name__)

CONFIGMAPS = Resource("", "v1", "configmaps", True)
PROMETHEUS_RULES = Resource("monitoring.coreos.com", "v1", "prometheusrules", True)
# PrometheusRule discovery and the ConfigMap's drift check are re-done this
# often; a failed ConfigMap write (its namespace missing) is retried this often.
DISCOVERY_TTL_SECONDS = 15.0
RETRY_SECONDS = 5.0


def prometheus_rule_name(class_name: str) -> str:
    """``ballast-slo-<class>``, within the 253-character limit."""
    return bounded(f"ballast-slo-{class_name}", 253)


def class_slos(specs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """name -> parsed ``slo`` of the classes that have a valid one."""
    out: dict[str, Any] = {}
    for name, spec in specs.items():
        if not spec.get("slo"):
            continue
        try:
            slo = WorkloadClassSpec.model_validate(dict(spec)).slo
        except ValidationError:
            continue
        if slo is not None:
            out[name] = slo
    return out


def build_configmap(namespace: str, specs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The ConfigMap holding every class's rules (an empty ``groups`` when none)."""
    text = dump(rules_file(class_slos(specs).items()))
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": RULES_CONFIGMAP,
            "namespace": namespace,
            "labels": {LABEL_MANAGED_BY: MANAGED_BY, "ballast.dev/slo-rules": "true"},
        },
        "data": {RULES_KEY: text},
    }


def build_prometheus_rule(
    namespace: str, name: str, uid: str, spec: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Class ``name``'s PrometheusRule, or None when it has no SLO to alert on."""
    slo = class_slos({name: spec}).get(name)
    group = rules_for(name, slo) if slo is not None else None
    if group is None:
        return None
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": prometheus_rule_name(name),
            "namespace": namespace,
            "labels": {**owner_labels("WorkloadClass", name), "ballast.dev/slo-rules": "true"},
            "ownerReferences": [owner_reference("WorkloadClass", name, uid)],
        },
        "spec": {"groups": [group]},
    }


def _same(desired: Mapping[str, Any], actual: Mapping[str, Any] | None) -> bool:
    """Whether ``actual`` carries everything ``desired`` sets (data/spec, labels, owners)."""
    if actual is None:
        return False
    meta, want = actual.get("metadata") or {}, desired["metadata"]
    labels = meta.get("labels") or {}
    if any(labels.get(k) != v for k, v in want["labels"].items()):
        return False
    owners = {o.get("uid") for o in meta.get("ownerReferences") or []}
    if any(o["uid"] not in owners for o in want.get("ownerReferences", [])):
        return False
    key = "data" if "data" in desired else "spec"
    return bool(actual.get(key) == desired[key])


class RulesSync:
    """Keeps the ConfigMap and the PrometheusRules in line with the classes (thread-safe)."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self._lock = threading.Lock()
        self._configmap: str | None = None  # the rules text last written or read
        self._rules: dict[str, dict[str, Any] | None] = {}  # class -> PrometheusRule written
        self._served: tuple[float, bool] = (-1e18, False)
        self._verified_at = -1e18  # monotonic time of the last read of the live ConfigMap
        self._failed: tuple[str, float] | None = None  # (rules text, when) of a failed write
        # The last refusal logged as a warning: the same one again (a namespace
        # still missing, every pass) is logged at debug, not once a pass.
        self._warned: tuple[int, str] | None = None
        self._slos: dict[str, Any] = {}  # class -> its parsed ``slo`` as last seen (set ones)
        self._next_try = -1e18  # monotonic time before which an unwritten ConfigMap waits

    def slo_changed(self, name: str, slo: Any) -> bool:
        """Record class ``name``'s parsed ``slo``; whether the ConfigMap needs a sync.

        ``slo`` is what :func:`class_slos` gives for the class (None: no slo,
        an invalid spec, or the class is gone). A class event that leaves
        every class's parsed ``slo`` as it was cannot change the ConfigMap,
        so the caller skips rebuilding it from every class (O(classes) per
        event, thousands of events when thousands of classes start). Until
        a ConfigMap was written or read, at most one sync per
        ``RETRY_SECONDS`` is asked for (its namespace may be missing).
        """
        with self._lock:
            before = self._slos.get(name)
            if slo:
                self._slos[name] = slo
            else:
                self._slos.pop(name, None)
            if before != (slo or None):
                return True
            if self._configmap is not None:
                return False
            # Unwritten: one event per retry period tries (the others, possibly
            # many at once on the handler threads, do not queue behind it).
            now = time.monotonic()
            if now < self._next_try:
                return False
            self._next_try = now + RETRY_SECONDS
            return True

    # ---------------------------------------------------------------- discovery
    def prometheus_rules_served(self) -> bool:
        """Whether monitoring.coreos.com/v1 serves prometheusrules (cached a minute)."""
        with self._lock:
            checked, served = self._served
            if time.monotonic() - checked < DISCOVERY_TTL_SECONDS:
                return served
            # One caller asks the server; concurrent ones keep the last answer meanwhile.
            self._served = (time.monotonic(), served)
        try:
            found = self.kube.get("/apis/monitoring.coreos.com/v1")
            served = any(
                r.get("name") == "prometheusrules" for r in (found or {}).get("resources") or []
            )
        except Exception as exc:  # a flaky discovery call: keep the last answer
            log.warning("discovery failed", extra=kv(group="monitoring.coreos.com", error=exc))
            return served
        self._served = (time.monotonic(), served)
        return served

    # ---------------------------------------------------------------- configmap
    def sync_configmap(self, specs: Mapping[str, Mapping[str, Any]], verify: bool = False) -> None:
        """Write the ConfigMap when its rules changed (``verify``: compare with the live one)."""
        desired = build_configmap(self.namespace, specs)
        text = desired["data"][RULES_KEY]
        path = CONFIGMAPS.path(RULES_CONFIGMAP, self.namespace)
        with self._lock:
            if verify and time.monotonic() - self._verified_at < DISCOVERY_TTL_SECONDS:
                verify = False  # every class's timer asks; one read a minute is enough
            if verify:
                self._verified_at = time.monotonic()
                live = self.kube.get(path)
                if _same(desired, live):
                    self._configmap = text
                    return
            elif self._configmap == text:
                return
            if (
                self._failed is not None
                and self._failed[0] == text
                and time.monotonic() - self._failed[1] < RETRY_SECONDS
            ):
                return
            try:
                self.kube.apply(path, desired, field_manager=FIELD_MANAGER)
            except KubeError as exc:
                self._configmap = None
                self._failed = (text, time.monotonic())
                again = self._warned == (exc.status, exc.message)
                self._warned = (exc.status, exc.message)
                (log.debug if again else log.warning)(
                    "slo rules configmap not written",
                    extra=kv(namespace=self.namespace, status=exc.status, error=exc.message),
                )
                return
            self._configmap, self._failed, self._warned = text, None, None
            log.info("slo rules configmap written", extra=kv(namespace=self.namespace))

    # ---------------------------------------------------------- prometheusrules
    def sync_prometheus_rule(
        self, name: str, uid: str, spec: Mapping[str, Any], verify: bool = False
    ) -> None:
        """Create, update or remove class ``name``'s PrometheusRule where the kind is served."""
        if not self.prometheus_rules_served():
            return
        desired = build_prometheus_rule(self.namespace, name, uid, spec)
        path = PROMETHEUS_RULES.path(prometheus_rule_name(name), self.namespace)
        with self._lock:
            if not verify and name in self._rules and self._rules[name] == desired:
                return
            try:
                if desired is None:
                    live = self.kube.get(path)
                    if live is not None and (
                        (live["metadata"].get("labels") or {}).get(LABEL_MANAGED_BY) == MANAGED_BY
                    ):
                        self.kube.delete(path, uid=live["metadata"].get("uid"))
                        log.info("prometheusrule removed", extra=kv(workloadclass=name))
                else:
                    if verify and _same(desired, self.kube.get(path)):
                        self._rules[name] = desired
                        return
                    self.kube.apply(path, desired, field_manager=FIELD_MANAGER)
                    log.info("prometheusrule applied", extra=kv(workloadclass=name))
            except KubeError as exc:
                self._rules.pop(name, None)
                log.warning(
                    "prometheusrule not written",
                    extra=kv(workloadclass=name, status=exc.status, error=exc.message),
                )
                return
            self._rules[name] = desired

    def forget(self, name: str) -> None:
        """Class ``name`` is gone: its PrometheusRule goes with it (garbage collection)."""
        with self._lock:
            self._rules.pop(name, None)
