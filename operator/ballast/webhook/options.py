"""The webhook's settings, and the ``ballast operator`` flags that set them."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

DEFAULT_NAMESPACE = "ballast-system"
DEFAULT_SECRET = "ballast-webhook-tls"
DEFAULT_CONFIG_NAME = "ballast"
DEFAULT_SCHEDULER = "ballast"
DEFAULT_PORT = 9443
# Namespaces never sent to the webhook (besides the operator's own).
SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")


@dataclass(frozen=True, slots=True)
class WebhookOptions:
    """Everything the webhook needs to know about where and how it runs."""

    port: int = DEFAULT_PORT
    host: str = "0.0.0.0"
    namespace: str = DEFAULT_NAMESPACE
    secret_name: str = DEFAULT_SECRET
    config_name: str = DEFAULT_CONFIG_NAME
    scheduler_name: str = DEFAULT_SCHEDULER
    # Exactly one of these addresses the webhook: a base URL (local clusters,
    # tests: https://127.0.0.1:<port>) or a Service in ``namespace``.
    url: str | None = None
    service_name: str | None = "ballast-webhook"
    service_port: int = 443
    # Extra matchLabels on the configurations' namespaceSelector (tests scope
    # the webhook to their own namespaces with it).
    namespace_labels: dict[str, str] = field(default_factory=dict)
    manage_config: bool = True
    # The configurations exist already (a Helm chart made them): only their
    # caBundle is written, and nothing else of them is owned.
    ca_bundle_only: bool = False
    # Someone else (cert-manager) writes the Secret (tls.crt, tls.key, ca.crt):
    # it is only read, and reloaded when it changes; never created or rotated.
    external_certs: bool = False

    @property
    def cert_hosts(self) -> tuple[str, ...]:
        """The names and addresses the serving certificate is valid for."""
        if self.url:
            host = urlsplit(self.url).hostname or "localhost"
            return (host,) if host == "localhost" else (host, "localhost")
        svc = self.service_name or "ballast-webhook"
        return (
            svc,
            f"{svc}.{self.namespace}",
            f"{svc}.{self.namespace}.svc",
            f"{svc}.{self.namespace}.svc.cluster.local",
        )

    @property
    def exempt_namespaces(self) -> tuple[str, ...]:
        """System namespaces and the operator's own: never mutated or validated."""
        return tuple(dict.fromkeys((*SYSTEM_NAMESPACES, self.namespace)))


def _labels(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"{part!r} is not key=value")
        out[key] = value
    return out


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``--webhook-*`` flags to ``ballast operator``."""
    g = parser.add_argument_group("admission webhook (docs/webhook.md)")
    g.add_argument(
        "--webhook-port",
        type=int,
        default=int(os.environ.get("BALLAST_WEBHOOK_PORT") or 0) or None,
        help="serve the admission webhook over TLS on this port (default: off; "
        f"$BALLAST_WEBHOOK_PORT; e.g. {DEFAULT_PORT})",
    )
    g.add_argument("--webhook-host", default="0.0.0.0", help="address to listen on")
    g.add_argument(
        "--webhook-namespace",
        default=os.environ.get("POD_NAMESPACE") or DEFAULT_NAMESPACE,
        help="the operator's namespace: holds the certificate Secret, never admitted "
        "(default: $POD_NAMESPACE, else ballast-system)",
    )
    g.add_argument("--webhook-secret", default=DEFAULT_SECRET, help="the certificate Secret")
    g.add_argument(
        "--webhook-config-name",
        default=DEFAULT_CONFIG_NAME,
        help="name of the Mutating/ValidatingWebhookConfiguration objects",
    )
    g.add_argument(
        "--webhook-scheduler-name",
        default=DEFAULT_SCHEDULER,
        help="schedulerName written into class pods",
    )
    addr = g.add_mutually_exclusive_group()
    addr.add_argument(
        "--webhook-url",
        default=None,
        help="base URL the API server calls, e.g. https://127.0.0.1:9443 (local clusters)",
    )
    addr.add_argument(
        "--webhook-service",
        default="ballast-webhook",
        help="Service (in --webhook-namespace) in front of the replicas (default addressing)",
    )
    g.add_argument(
        "--webhook-namespace-labels",
        type=_labels,
        default={},
        metavar="K=V[,K=V]",
        help="only admit pods and Jobs in namespaces with these labels",
    )
    g.add_argument(
        "--webhook-no-config",
        action="store_true",
        help="serve, but leave the webhook configurations to someone else (e.g. Helm)",
    )
    g.add_argument(
        "--webhook-ca-bundle-only",
        action="store_true",
        help="the configurations exist (the Helm chart makes them): write only their caBundle",
    )
    g.add_argument(
        "--webhook-external-certs",
        action="store_true",
        help="the Secret is written by someone else (cert-manager: tls.crt, tls.key, ca.crt): "
        "read it and reload it when it changes, never write it",
    )


def from_args(args: argparse.Namespace) -> WebhookOptions | None:
    """The options the flags ask for; None when the webhook is off."""
    if not getattr(args, "webhook_port", None):
        return None
    return WebhookOptions(
        port=args.webhook_port,
        host=args.webhook_host,
        namespace=args.webhook_namespace,
        secret_name=args.webhook_secret,
        config_name=args.webhook_config_name,
        scheduler_name=args.webhook_scheduler_name,
        url=args.webhook_url,
        service_name=None if args.webhook_url else args.webhook_service,
        namespace_labels=dict(args.webhook_namespace_labels),
        manage_config=not args.webhook_no_config,
        ca_bundle_only=args.webhook_ca_bundle_only,
        external_certs=args.webhook_external_certs,
    )
