"""The webhook in the operator process: certificates, watches, server, configurations.

Runs beside kopf in threads of its own, in every replica (kopf's peering
pauses handlers, not this): each replica serves with the certificate from the
shared Secret. Every ``resync_seconds`` a keeper thread re-reads the Secret
(rotating it when :func:`certs.plan` says so: the first replica to write
wins, the others re-read on conflict), reloads the server's certificate when
it changed, and server-side applies the webhook configurations with the
current ``caBundle`` (restoring them if someone edited or deleted them).
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any

from ballast.api import wellknown as wk
from ballast.clock import Clock
from ballast.controller.builders import owner_labels
from ballast.kube.raw import (
    BATCHWINDOWS,
    NAMESPACES,
    NODES,
    PRIORITY_CLASSES,
    TRANSPORT_ERRORS,
    WORKLOADCLASSES,
    Kube,
    KubeError,
    Resource,
)
from ballast.logs import kv
from ballast.scheduler.informer import Event, Informer
from ballast.webhook import certs, config
from ballast.webhook.admit import admit
from ballast.webhook.options import WebhookOptions
from ballast.webhook.server import WebhookServer
from ballast.webhook.view import ClusterView

log = logging.getLogger(__name__)

SECRETS = Resource("", "v1", "secrets", True)
RESYNC_SECONDS = 60.0
START_ATTEMPTS = 10
NAMESPACE_LOOKUP_TIMEOUT = 2.0
_API_ERRORS: tuple[type[Exception], ...] = (KubeError, *TRANSPORT_ERRORS)


class WebhookError(RuntimeError):
    """The webhook cannot start (no Secret can be read or written, the port is taken)."""


_KEEP_ERRORS: tuple[type[Exception], ...] = (*_API_ERRORS, WebhookError)


def _secret_body(
    opts: WebhookOptions, bundle: certs.CertBundle, existing: Mapping[str, Any] | None
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": opts.secret_name,
        "namespace": opts.namespace,
        "labels": owner_labels("webhook", opts.config_name),
    }
    if existing is not None:
        meta["resourceVersion"] = (existing.get("metadata") or {}).get("resourceVersion")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        # The type of an existing Secret is immutable; keep whatever it is.
        "type": (existing or {}).get("type") or "kubernetes.io/tls",
        "data": certs.secret_data(bundle),
    }


def sync_certs(
    kube: Kube,
    opts: WebhookOptions,
    now: dt.datetime,
    life: certs.Lifetimes = certs.DEFAULT_LIFETIMES,
) -> certs.CertBundle:
    """The certificates in the Secret, created or rotated first when :func:`certs.plan` says so.

    Safe with several replicas: writes carry the resourceVersion read, so
    only one replica's rotation lands and the others adopt it on conflict.
    """
    if opts.external_certs:
        return read_external_certs(kube, opts)
    for _ in range(5):
        secret = kube.get(SECRETS.path(opts.secret_name, opts.namespace))
        bundle, reason = certs.plan(certs.from_secret(secret), opts.cert_hosts, now, life)
        if not reason:
            return bundle
        body = _secret_body(opts, bundle, secret)
        try:
            if secret is None:
                kube.create(SECRETS.path(namespace=opts.namespace), body)
            else:
                kube.request("PUT", SECRETS.path(opts.secret_name, opts.namespace), body=body)
        except KubeError as exc:
            if exc.conflict:
                continue  # another replica wrote first: read what it wrote
            raise
        log.info(
            "webhook certificate written",
            extra=kv(
                secret=f"{opts.namespace}/{opts.secret_name}",
                reason=reason,
                not_after=bundle.cert.not_valid_after_utc.isoformat(),
            ),
        )
        return bundle
    raise WebhookError(f"Secret {opts.namespace}/{opts.secret_name} keeps changing under us")


class CertsNotReady(WebhookError):
    """The Secret someone else writes (cert-manager) holds no usable certificate yet."""


# What the first certificate read retries on (then the operator exits and is restarted).
_START_ERRORS: tuple[type[Exception], ...] = (*_API_ERRORS, CertsNotReady)


def read_external_certs(kube: Kube, opts: WebhookOptions) -> certs.CertBundle:
    """The certificate another issuer keeps in the Secret (read only, never written)."""
    secret = kube.get(SECRETS.path(opts.secret_name, opts.namespace))
    bundle = certs.from_external_secret(secret)
    if bundle is None:
        raise CertsNotReady(
            f"Secret {opts.namespace}/{opts.secret_name} holds no tls.crt/tls.key yet"
        )
    return bundle


# Owns only the caBundle fields of configurations the Helm chart made; a manager of
# its own, so that it never takes over (or drops) fields another mode applied.
CA_BUNDLE_FIELD_MANAGER = "ballast-webhook-ca"


def apply_configs(kube: Kube, opts: WebhookOptions, ca_bundle: bytes) -> None:
    """Server-side apply both webhook configurations with ``ca_bundle``.

    With ``ca_bundle_only`` the configurations must exist already; only their
    ``caBundle`` is applied (a missing one is refused by the API server and
    retried at the next resync).
    """
    for kind in ("mutating", "validating"):
        if opts.ca_bundle_only:
            obj = config.ca_bundle_patch(kind, opts, ca_bundle)
            manager = CA_BUNDLE_FIELD_MANAGER
        else:
            build = config.mutating if kind == "mutating" else config.validating
            obj, manager = build(opts, ca_bundle), wk.FIELD_MANAGER
        kube.apply(config.path(kind, opts.config_name), obj, field_manager=manager)


def delete_configs(kube: Kube, name: str) -> None:
    """Delete both webhook configurations named ``name`` (tests, uninstall)."""
    for kind in ("mutating", "validating"):
        kube.delete(config.path(kind, name))


class WebhookService:
    """Owns the server, the watches feeding its view, and the keeper thread."""

    WATCHED: tuple[tuple[Resource, str | None], ...] = (
        (WORKLOADCLASSES, None),
        (BATCHWINDOWS, None),
        (NODES, None),
        (NAMESPACES, None),
        (PRIORITY_CLASSES, f"{wk.LABEL_MANAGED_BY}={wk.MANAGED_BY}"),
    )

    def __init__(
        self,
        kube: Kube,
        opts: WebhookOptions,
        clock: Clock,
        *,
        resync_seconds: float = RESYNC_SECONDS,
        lifetimes: certs.Lifetimes = certs.DEFAULT_LIFETIMES,
    ) -> None:
        self.kube = kube
        self.opts = opts
        self.clock = clock
        self.resync_seconds = resync_seconds
        self.lifetimes = lifetimes
        self.view = ClusterView()
        self.events: queue.Queue[Event] = queue.Queue(maxsize=20_000)
        self.informers = [
            Informer(kube, res, self.events, label_selector=sel) for res, sel in self.WATCHED
        ]
        self.server: WebhookServer | None = None
        self.bundle: certs.CertBundle | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # ---------------------------------------------------------------- admission
    def _lookup_namespace(self, name: str) -> dict[str, str] | None:
        try:
            ns = self.kube.request(
                "GET", NAMESPACES.path(name), timeout=NAMESPACE_LOOKUP_TIMEOUT, retries=False
            )
        except _API_ERRORS:
            return None
        labels = ((ns or {}).get("metadata") or {}).get("labels") or {}
        return {str(k): str(v) for k, v in labels.items()}

    def _admit(self, path: str, review: Any) -> dict[str, Any]:
        return admit(
            path,
            review,
            self.view,
            scheduler_name=self.opts.scheduler_name,
            now=self.clock.now(),
            lookup_namespace=self._lookup_namespace,
        )

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Certificates, watches, server, configurations; raises :class:`WebhookError`."""
        self.bundle = self._first_certs()
        for inf in self.informers:
            inf.start()
        self._spawn(self._consume, "webhook-view")
        try:
            self.server = WebhookServer(
                (self.opts.host, self.opts.port),
                self._admit,
                self.bundle.cert_pem,
                self.bundle.key_pem,
            )
        except OSError as exc:
            raise WebhookError(
                f"cannot listen on {self.opts.host}:{self.opts.port}: {exc}"
            ) from exc
        self.server.start()
        self._apply_configs()
        self._spawn(self._keep, "webhook-keeper")
        log.info(
            "webhook serving",
            extra=kv(
                address=f"{self.opts.host}:{self.server.port}",
                config=self.opts.config_name if self.opts.manage_config else "(not managed)",
                url=self.opts.url or f"service {self.opts.namespace}/{self.opts.service_name}",
            ),
        )

    def stop(self) -> None:
        """Stop serving and watching. The configurations stay: other replicas serve them."""
        self._stop.set()
        for inf in self.informers:
            inf.stop()
        if self.server is not None:
            self.server.stop()

    def wait_synced(self, timeout: float) -> bool:
        """Wait until every watched kind has been listed once (tests)."""
        deadline = time.monotonic() + timeout
        kinds = [res.plural for res, _ in self.WATCHED]
        while time.monotonic() < deadline:
            if all(self.view.is_synced(k) for k in kinds):
                return True
            time.sleep(0.05)
        return False

    def _spawn(self, target: Any, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _first_certs(self) -> certs.CertBundle:
        delay = 0.5
        for attempt in range(START_ATTEMPTS):
            try:
                return sync_certs(self.kube, self.opts, self.clock.now(), self.lifetimes)
            except _START_ERRORS as exc:
                if isinstance(exc, KubeError) and 400 <= exc.status < 500 and not exc.conflict:
                    raise WebhookError(
                        f"cannot read or write Secret {self.opts.namespace}/"
                        f"{self.opts.secret_name}: {exc}"
                    ) from exc
                log.warning(
                    "webhook certificate not ready; retrying",
                    extra=kv(attempt=attempt + 1, error=exc, backoff=delay),
                )
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        if self.opts.external_certs:
            raise CertsNotReady(
                f"Secret {self.opts.namespace}/{self.opts.secret_name} holds no certificate "
                "(is cert-manager issuing it?)"
            )
        raise WebhookError("the API server did not answer while setting up certificates")

    def _apply_configs(self) -> None:
        if not self.opts.manage_config or self.bundle is None:
            return
        try:
            apply_configs(self.kube, self.opts, self.bundle.ca_pem)
        except _API_ERRORS as exc:
            log.warning("webhook configuration not applied", extra=kv(error=exc))

    def _consume(self) -> None:
        while not self._stop.is_set():
            try:
                ev = self.events.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self.view.apply(ev.kind, ev.type, ev.obj)
            except Exception:  # pragma: no cover - one bad object must not stop the view
                log.exception("webhook view update failed", extra=kv(kind=ev.kind))

    def keep_once(self) -> None:
        """Re-read (and rotate) the certificates, reload them, re-apply the configurations."""
        try:
            bundle = sync_certs(self.kube, self.opts, self.clock.now(), self.lifetimes)
        except _KEEP_ERRORS as exc:
            log.warning("webhook certificate check failed", extra=kv(error=exc))
            return
        if self.bundle is None or bundle.cert_pem != self.bundle.cert_pem:
            if self.server is not None:
                self.server.load_cert(bundle.cert_pem, bundle.key_pem)
            log.info(
                "webhook certificate reloaded",
                extra=kv(not_after=bundle.cert.not_valid_after_utc.isoformat()),
            )
        self.bundle = bundle
        self._apply_configs()

    def _keep(self) -> None:
        while not self._stop.wait(self.resync_seconds):
            self.keep_once()
