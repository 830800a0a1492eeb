"""The webhook's CA and serving certificate: creation, rotation, the Secret round trip."""

from __future__ import annotations

import datetime as dt

from cryptography import x509

from ballast.webhook import certs

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
HOSTS = ("127.0.0.1", "localhost")
LIFE = certs.Lifetimes(
    ca=dt.timedelta(days=100),
    ca_renew_before=dt.timedelta(days=10),
    serving=dt.timedelta(days=20),
    serving_renew_before=dt.timedelta(days=5),
)


def test_fresh_bundle_is_a_ca_and_a_serving_cert_for_the_hosts() -> None:
    b, reason = certs.plan(None, HOSTS, NOW, LIFE)
    assert reason == "Created"
    assert certs.covers(b.cert, HOSTS)
    assert certs.signed_by(b.cert, b.ca)
    assert b.ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert b.cert.not_valid_after_utc == NOW + LIFE.serving


def test_nothing_changes_while_the_certificates_are_fresh() -> None:
    b, _ = certs.plan(None, HOSTS, NOW, LIFE)
    same, reason = certs.plan(b, HOSTS, NOW + dt.timedelta(days=14), LIFE)
    assert (same, reason) == (b, "")
    assert certs.renew_at(b, LIFE) == NOW + LIFE.serving - LIFE.serving_renew_before


def test_serving_cert_is_reissued_before_expiry_from_the_same_ca() -> None:
    b, _ = certs.plan(None, HOSTS, NOW, LIFE)
    later = NOW + dt.timedelta(days=16)
    r, reason = certs.plan(b, HOSTS, later, LIFE)
    assert reason == "ServingRotated"
    assert r.ca_pem == b.ca_pem and r.ca_key_pem == b.ca_key_pem
    assert r.cert_pem != b.cert_pem
    assert certs.signed_by(r.cert, b.ca)
    assert r.cert.not_valid_after_utc == later + LIFE.serving


def test_serving_cert_is_reissued_when_the_hosts_change() -> None:
    b, _ = certs.plan(None, HOSTS, NOW, LIFE)
    r, reason = certs.plan(b, ("ballast-webhook.ballast-system.svc",), NOW, LIFE)
    assert reason == "ServingRotated"
    assert certs.covers(r.cert, ("ballast-webhook.ballast-system.svc",))


def test_ca_rotation_keeps_the_old_ca_in_the_bundle_until_it_expires() -> None:
    b, _ = certs.plan(None, HOSTS, NOW, LIFE)
    later = NOW + dt.timedelta(days=91)
    r, reason = certs.plan(b, HOSTS, later, LIFE)
    assert reason == "CARotated"
    cas = x509.load_pem_x509_certificates(r.ca_pem)
    assert len(cas) == 2
    assert cas[1] == b.ca  # a replica still serving the old cert stays trusted
    assert certs.signed_by(r.cert, cas[0])
    # Serving certs never outlive their CA.
    assert r.cert.not_valid_after_utc <= cas[0].not_valid_after_utc
    # Once the old CA has expired it leaves the bundle at the next reissue.
    much_later = NOW + dt.timedelta(days=101 + 16)
    r2, reason2 = certs.plan(r, HOSTS, much_later, LIFE)
    assert reason2 == "ServingRotated"
    assert x509.load_pem_x509_certificates(r2.ca_pem) == [cas[0]]


def test_garbage_in_the_secret_starts_over() -> None:
    b, _ = certs.plan(None, HOSTS, NOW, LIFE)
    broken = certs.CertBundle(b"junk", b.ca_key_pem, b.cert_pem, b.key_pem)
    r, reason = certs.plan(broken, HOSTS, NOW, LIFE)
    assert reason == "Unreadable"
    assert certs.signed_by(r.cert, r.ca)


def test_a_cert_from_another_ca_is_reissued() -> None:
    a, _ = certs.plan(None, HOSTS, NOW, LIFE)
    b, _ = certs.plan(None, HOSTS, NOW, LIFE)
    mixed = certs.CertBundle(a.ca_pem, a.ca_key_pem, b.cert_pem, b.key_pem)
    r, reason = certs.plan(mixed, HOSTS, NOW, LIFE)
    assert reason == "ServingRotated"
    assert certs.signed_by(r.cert, a.ca)


def test_secret_round_trip() -> None:
    b, _ = certs.plan(None, HOSTS, NOW, LIFE)
    secret = {"data": certs.secret_data(b)}
    assert certs.from_secret(secret) == b
    assert certs.from_secret(None) is None
    assert certs.from_secret({"data": {"tls.crt": "!!"}}) is None
    assert certs.from_secret({"data": "nope"}) is None
