"""The webhook's modes for a Helm install: configurations made by the chart, certificates by cert-manager."""

from __future__ import annotations

import argparse
import base64
import datetime as dt
from typing import Any

import pytest

from ballast.controller import cli
from ballast.controller.settings import ensure_peering_object
from ballast.kube.raw import KubeError
from ballast.webhook import certs, config, options, service

NOW = dt.datetime.now(dt.UTC)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    return parser.parse_args(list(argv))


class FakeKube:
    """Records writes; serves objects from a dict keyed by path."""

    def __init__(self, objects: dict[str, Any] | None = None, forbid_create: bool = False) -> None:
        self.objects = dict(objects or {})
        self.forbid_create = forbid_create
        self.calls: list[tuple[str, str, Any, str | None]] = []

    def get(self, path: str) -> Any:
        self.calls.append(("GET", path, None, None))
        return self.objects.get(path)

    def create(self, path: str, obj: Any) -> Any:
        self.calls.append(("POST", path, obj, None))
        if self.forbid_create:
            raise KubeError(403, "Forbidden", {"message": "no create"})
        return obj

    def request(self, method: str, path: str, **kw: Any) -> Any:
        self.calls.append((method, path, kw.get("body"), None))
        return kw.get("body")

    def apply(self, path: str, obj: Any, *, field_manager: str) -> Any:
        self.calls.append(("APPLY", path, obj, field_manager))
        return obj

    def writes(self) -> list[tuple[str, str, Any, str | None]]:
        return [c for c in self.calls if c[0] != "GET"]


def test_flags_select_the_helm_modes() -> None:
    opts = options.from_args(
        parse("--webhook-port", "9443", "--webhook-ca-bundle-only", "--webhook-external-certs")
    )
    assert opts is not None and opts.ca_bundle_only and opts.external_certs and opts.manage_config
    plain = options.from_args(parse("--webhook-port", "9443"))
    assert plain is not None and not plain.ca_bundle_only and not plain.external_certs


@pytest.mark.parametrize("kind", ["mutating", "validating"])
def test_ca_bundle_patch_names_every_webhook_and_owns_only_the_bundle(kind: str) -> None:
    opts = options.WebhookOptions(namespace="ops", config_name="rel-ballast")
    full = config.mutating(opts, b"CA") if kind == "mutating" else config.validating(opts, b"CA")
    patch = config.ca_bundle_patch(kind, opts, b"CA")
    assert patch["kind"] == full["kind"] and patch["metadata"] == {"name": "rel-ballast"}
    assert [h["name"] for h in patch["webhooks"]] == [h["name"] for h in full["webhooks"]]
    for hook in patch["webhooks"]:
        assert set(hook) == {"name", "clientConfig"}
        assert hook["clientConfig"] == {"caBundle": base64.b64encode(b"CA").decode()}


def test_ca_bundle_only_applies_under_its_own_field_manager() -> None:
    kube = FakeKube()
    opts = options.WebhookOptions(namespace="ops", config_name="c", ca_bundle_only=True)
    service.apply_configs(kube, opts, b"CA")  # type: ignore[arg-type]
    applied = kube.writes()
    assert [c[1].rsplit("/", 2)[-2] for c in applied] == [
        "mutatingwebhookconfigurations",
        "validatingwebhookconfigurations",
    ]
    assert {c[3] for c in applied} == {service.CA_BUNDLE_FIELD_MANAGER}
    assert all("rules" not in h for c in applied for h in c[2]["webhooks"])


def _secret(data: dict[str, bytes]) -> dict[str, Any]:
    return {"data": {k: base64.b64encode(v).decode() for k, v in data.items()}}


def test_external_certs_are_read_and_never_written() -> None:
    bundle = certs.fresh(["svc.ops.svc"], NOW)
    opts = options.WebhookOptions(namespace="ops", secret_name="tls", external_certs=True)
    path = service.SECRETS.path("tls", "ops")
    # What cert-manager writes: no ca.key.
    kube = FakeKube(
        {
            path: _secret(
                {"tls.crt": bundle.cert_pem, "tls.key": bundle.key_pem, "ca.crt": bundle.ca_pem}
            )
        }
    )
    got = service.sync_certs(kube, opts, NOW)  # type: ignore[arg-type]
    assert (got.cert_pem, got.key_pem, got.ca_pem) == (
        bundle.cert_pem,
        bundle.key_pem,
        bundle.ca_pem,
    )
    assert kube.writes() == []


@pytest.mark.parametrize(
    "secret",
    [
        None,
        {"data": {}},
        _secret({"tls.crt": b"", "tls.key": b""}),
        _secret({"tls.crt": b"junk", "tls.key": b"k"}),
    ],
    ids=["missing", "empty", "empty-values", "not-pem"],
)
def test_external_certs_not_ready_until_issued(secret: Any) -> None:
    opts = options.WebhookOptions(namespace="ops", secret_name="tls", external_certs=True)
    kube = FakeKube({service.SECRETS.path("tls", "ops"): secret} if secret else {})
    with pytest.raises(service.CertsNotReady):
        service.sync_certs(kube, opts, NOW)  # type: ignore[arg-type]
    assert kube.writes() == []


def test_self_managed_certs_fill_an_empty_secret_the_chart_made() -> None:
    opts = options.WebhookOptions(namespace="ops", secret_name="tls")
    path = service.SECRETS.path("tls", "ops")
    empty = {
        "metadata": {"name": "tls", "namespace": "ops", "resourceVersion": "7"},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": "", "tls.key": ""},
    }
    kube = FakeKube({path: empty})
    got = service.sync_certs(kube, opts, NOW)  # type: ignore[arg-type]
    ((method, wpath, body, _),) = kube.writes()
    assert (method, wpath) == ("PUT", path)  # an update of the chart's Secret, never a create
    assert body["metadata"]["resourceVersion"] == "7" and body["type"] == "kubernetes.io/tls"
    assert certs.from_secret(body) == got


def test_peering_object_the_chart_made_is_not_created_again() -> None:
    from ballast.controller.settings import CLUSTER_PEERINGS

    kube = FakeKube(
        {CLUSTER_PEERINGS.path("ballast"): {"metadata": {"name": "ballast"}}}, forbid_create=True
    )
    ensure_peering_object(kube, "ballast")  # type: ignore[arg-type]
    assert kube.writes() == []
    missing = FakeKube()
    ensure_peering_object(missing, "ballast")  # type: ignore[arg-type]
    assert [c[0] for c in missing.writes()] == ["POST"]
