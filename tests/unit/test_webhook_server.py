"""The webhook configurations, the flags, and the TLS server with certificate reload."""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import http.client
import json
import ssl
from typing import Any

import pytest

from ballast.controller import cli
from ballast.webhook import certs, config, options
from ballast.webhook.server import WebhookServer

NOW = dt.datetime.now(dt.UTC)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    return parser.parse_args(list(argv))


def test_webhook_is_off_unless_a_port_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BALLAST_WEBHOOK_PORT", raising=False)
    assert options.from_args(parse()) is None
    opts = options.from_args(
        parse(
            "--webhook-port",
            "9443",
            "--webhook-url",
            "https://127.0.0.1:9443",
            "--webhook-namespace",
            "ops",
            "--webhook-namespace-labels",
            "a=b,c=d",
        )
    )
    assert opts is not None
    assert (opts.port, opts.url, opts.service_name) == (9443, "https://127.0.0.1:9443", None)
    assert opts.namespace_labels == {"a": "b", "c": "d"}
    assert opts.cert_hosts == ("127.0.0.1", "localhost")
    assert "ops" in opts.exempt_namespaces and "kube-system" in opts.exempt_namespaces


def test_service_addressing_certificate_names() -> None:
    opts = options.WebhookOptions(namespace="ops", service_name="hook")
    assert "hook.ops.svc" in opts.cert_hosts
    cfg = config.client_config(opts, "/mutate/pods", b"CA")
    assert cfg["service"] == {
        "namespace": "ops",
        "name": "hook",
        "path": "/mutate/pods",
        "port": 443,
    }
    assert base64.b64decode(cfg["caBundle"]) == b"CA"


def test_configurations_are_scoped_and_fail_open() -> None:
    opts = options.WebhookOptions(
        namespace="ops", url="https://127.0.0.1:1/", namespace_labels={"t": "1"}
    )
    mut = config.mutating(opts, b"CA")
    val = config.validating(opts, b"CA")
    assert mut["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "ballast"
    hooks = mut["webhooks"] + val["webhooks"]
    assert {h["name"] for h in hooks} == {
        "pods.mutate.ballast.dev",
        "jobs.mutate.ballast.dev",
        "pods.validate.ballast.dev",
    }
    for h in hooks:
        assert h["failurePolicy"] == "Ignore"
        assert h["sideEffects"] == "None"
        assert h["admissionReviewVersions"] == ["v1"]
        assert h["timeoutSeconds"] == 5
        assert h["clientConfig"]["url"].startswith("https://127.0.0.1:1/")
        exempt = h["namespaceSelector"]["matchExpressions"][0]
        assert exempt["operator"] == "NotIn" and {"kube-system", "ops"} <= set(exempt["values"])
        assert h["namespaceSelector"]["matchLabels"] == {"t": "1"}
    for h in mut["webhooks"]:
        assert h["objectSelector"]["matchExpressions"][0]["key"] == "ballast.dev/class"
    assert "schedulerName == 'ballast'" in val["webhooks"][0]["matchConditions"][0]["expression"]
    assert config.path("mutating", "x").endswith("/mutatingwebhookconfigurations/x")


def _post(port: int, ca_pem: bytes, path: str, body: Any) -> tuple[int, bytes, bytes]:
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
    try:
        conn.request(
            "POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        resp = conn.getresponse()
        data = resp.read()
        sock = conn.sock
        assert isinstance(sock, ssl.SSLSocket)
        peer = sock.getpeercert(binary_form=True) or b""
        return resp.status, data, peer
    finally:
        conn.close()


def test_server_answers_over_tls_and_reloads_its_certificate() -> None:
    bundle = certs.fresh(("127.0.0.1",), NOW)
    seen: list[str] = []

    def admit(path: str, review: Any) -> dict[str, Any]:
        seen.append(path)
        if path != "/mutate/pods":
            raise KeyError(path)
        return {"response": {"uid": review["request"]["uid"], "allowed": True}}

    server = WebhookServer(("127.0.0.1", 0), admit, bundle.cert_pem, bundle.key_pem)
    server.start()
    try:
        review = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {"uid": "x"},
        }
        status, data, first_peer = _post(server.port, bundle.ca_pem, "/mutate/pods", review)
        assert status == 200 and json.loads(data)["response"]["uid"] == "x"
        status, _, _ = _post(server.port, bundle.ca_pem, "/other", review)
        assert status == 404
        # A client that does not trust the CA cannot talk to it.
        other = certs.fresh(("127.0.0.1",), NOW)
        with pytest.raises(ssl.SSLError):
            _post(server.port, other.ca_pem, "/mutate/pods", review)
        # Rotation: same CA, new serving cert; new connections get it.
        rotated, reason = certs.plan(
            bundle, ("127.0.0.1", "localhost"), NOW, certs.DEFAULT_LIFETIMES
        )
        assert reason == "ServingRotated"
        server.load_cert(rotated.cert_pem, rotated.key_pem)
        status, _, peer = _post(server.port, bundle.ca_pem, "/mutate/pods", review)
        assert status == 200 and peer != first_peer
    finally:
        server.stop()
