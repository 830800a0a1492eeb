"""The Mutating and ValidatingWebhookConfiguration objects (pure builders).

Choices, with the reasons (docs/webhook.md has the user-facing version):

- ``failurePolicy: Ignore`` for every webhook. With the webhook down, pods
  and Jobs are still created: a Ballast outage must never stop a cluster's
  workloads (Deployments scaling, system controllers). What is lost is
  checked again later: the scheduler refuses what the validator would
  (``ClassNotAllowed``, ``InvalidRequest``, ``Unschedulable``) and holds pods
  of a closed window (``WindowClosed``); only the filled-in fields are
  missing (see docs/webhook.md).
- ``timeoutSeconds: 5``: every answer comes from memory in milliseconds; a
  webhook slower than that is sick, and the API server should move on
  instead of adding up to 10 s (the default) to each pod creation, twice.
- ``sideEffects: None``: the webhook only answers (dry-run safe).
- ``admissionReviewVersions: [v1]``: the only version the server speaks.
- ``namespaceSelector`` exempts kube-system, kube-public, kube-node-lease and
  the operator's own namespace, so that the control plane and the webhook's
  own pods never wait on the webhook; ``objectSelector`` (and, for the
  validator, ``matchConditions`` that also catch ``schedulerName: ballast``)
  send only class pods and class Jobs, so other workloads pay nothing.
- ``reinvocationPolicy: IfNeeded`` on pods: a later webhook that adds a
  container (a sidecar injector) gets its container the batching env too.
"""

from __future__ import annotations

import base64
from typing import Any

from ballast.api import wellknown as wk
from ballast.controller.builders import owner_labels
from ballast.webhook.admit import PATH_MUTATE_JOBS, PATH_MUTATE_PODS, PATH_VALIDATE_PODS
from ballast.webhook.options import WebhookOptions

ADMISSION_GROUP = "admissionregistration.k8s.io"
ADMISSION_VERSION = "v1"
FAILURE_POLICY = "Ignore"
TIMEOUT_SECONDS = 5
OWNER_KIND = "webhook"

_CLASS_SELECTOR = {"matchExpressions": [{"key": wk.LABEL_CLASS, "operator": "Exists"}]}
_CLASS_IN_LABELS = f"has(object.metadata.labels) && '{wk.LABEL_CLASS}' in object.metadata.labels"


def client_config(opts: WebhookOptions, path: str, ca_bundle: bytes) -> dict[str, Any]:
    """Where the API server sends a review: a URL, or the Service in front of the replicas."""
    cfg: dict[str, Any] = {"caBundle": base64.b64encode(ca_bundle).decode()}
    if opts.url:
        cfg["url"] = opts.url.rstrip("/") + path
    else:
        cfg["service"] = {
            "namespace": opts.namespace,
            "name": opts.service_name or "ballast-webhook",
            "path": path,
            "port": opts.service_port,
        }
    return cfg


def namespace_selector(opts: WebhookOptions) -> dict[str, Any]:
    """Every namespace but the exempt ones (and only labelled ones when asked)."""
    sel: dict[str, Any] = {
        "matchExpressions": [
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "NotIn",
                "values": list(opts.exempt_namespaces),
            }
        ]
    }
    if opts.namespace_labels:
        sel["matchLabels"] = dict(opts.namespace_labels)
    return sel


def _rule(group: str, version: str, resource: str) -> dict[str, Any]:
    return {
        "apiGroups": [group],
        "apiVersions": [version],
        "operations": ["CREATE"],
        "resources": [resource],
        "scope": "Namespaced",
    }


def _common(opts: WebhookOptions, path: str, ca_bundle: bytes) -> dict[str, Any]:
    return {
        "clientConfig": client_config(opts, path, ca_bundle),
        "failurePolicy": FAILURE_POLICY,
        "matchPolicy": "Equivalent",
        "sideEffects": "None",
        "timeoutSeconds": TIMEOUT_SECONDS,
        "admissionReviewVersions": ["v1"],
        "namespaceSelector": namespace_selector(opts),
    }


def _meta(opts: WebhookOptions) -> dict[str, Any]:
    return {"name": opts.config_name, "labels": owner_labels(OWNER_KIND, opts.config_name)}


def mutating(opts: WebhookOptions, ca_bundle: bytes) -> dict[str, Any]:
    """The MutatingWebhookConfiguration: class pods and class Jobs, on create."""
    return {
        "apiVersion": f"{ADMISSION_GROUP}/{ADMISSION_VERSION}",
        "kind": "MutatingWebhookConfiguration",
        "metadata": _meta(opts),
        "webhooks": [
            {
                "name": "pods.mutate.ballast.dev",
                **_common(opts, PATH_MUTATE_PODS, ca_bundle),
                "rules": [_rule("", "v1", "pods")],
                "objectSelector": _CLASS_SELECTOR,
                "reinvocationPolicy": "IfNeeded",
            },
            {
                "name": "jobs.mutate.ballast.dev",
                **_common(opts, PATH_MUTATE_JOBS, ca_bundle),
                "rules": [_rule("batch", "v1", "jobs")],
                "objectSelector": _CLASS_SELECTOR,
                "reinvocationPolicy": "Never",
            },
        ],
    }


def validating(opts: WebhookOptions, ca_bundle: bytes) -> dict[str, Any]:
    """The ValidatingWebhookConfiguration: class pods and Ballast-scheduled pods, on create."""
    return {
        "apiVersion": f"{ADMISSION_GROUP}/{ADMISSION_VERSION}",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": _meta(opts),
        "webhooks": [
            {
                "name": "pods.validate.ballast.dev",
                **_common(opts, PATH_VALIDATE_PODS, ca_bundle),
                "rules": [_rule("", "v1", "pods")],
                "matchConditions": [
                    {
                        "name": "ballast-pod",
                        "expression": f"({_CLASS_IN_LABELS}) || "
                        f"object.spec.schedulerName == '{opts.scheduler_name}'",
                    }
                ],
            }
        ],
    }


def ca_bundle_patch(kind: str, opts: WebhookOptions, ca_bundle: bytes) -> dict[str, Any]:
    """A server-side apply body that owns only each webhook's ``caBundle`` (``kind``: mutating | validating).

    For configurations someone else made (the Helm chart): ``webhooks`` is a
    list keyed by name, so the apply merges into the existing entries and
    leaves every other field to its owner. The names come from the builders
    above, so they cannot drift from what the operator would write itself.
    """
    full = mutating(opts, ca_bundle) if kind == "mutating" else validating(opts, ca_bundle)
    return {
        "apiVersion": full["apiVersion"],
        "kind": full["kind"],
        "metadata": {"name": opts.config_name},
        "webhooks": [
            {"name": h["name"], "clientConfig": {"caBundle": h["clientConfig"]["caBundle"]}}
            for h in full["webhooks"]
        ],
    }


def path(kind: str, name: str) -> str:
    """The REST path of a webhook configuration (``kind``: mutating | validating)."""
    plural = f"{kind}webhookconfigurations"
    return f"/apis/{ADMISSION_GROUP}/{ADMISSION_VERSION}/{plural}/{name}"
