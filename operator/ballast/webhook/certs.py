"""The webhook's own CA and serving certificate: made, checked and rotated (pure).

Nothing here does I/O: :func:`plan` looks at what the Secret holds and the
time, and returns what it should hold. The CA signs the serving certificate;
the configurations' ``caBundle`` is the CA *bundle* (the current CA first,
then the previous one until it expires), so that a replica still serving a
certificate from the previous CA is trusted while the others move on.

Lifetimes: the CA lives 10 years and is replaced a year before it ends; the
serving certificate lives a year and is reissued 30 days before it ends, or
at once when it does not cover the names the API server dials, or was not
signed by the current CA. Keys are ECDSA P-256, as in the local cluster's PKI.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Keys of the Secret (type kubernetes.io/tls, plus the CA).
TLS_CERT = "tls.crt"
TLS_KEY = "tls.key"
CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SKEW = dt.timedelta(hours=1)  # not-before in the past: tolerate clocks a little behind


@dataclass(frozen=True, slots=True)
class Lifetimes:
    """How long certificates live and how early they are replaced."""

    ca: dt.timedelta = dt.timedelta(days=3650)
    ca_renew_before: dt.timedelta = dt.timedelta(days=365)
    serving: dt.timedelta = dt.timedelta(days=365)
    serving_renew_before: dt.timedelta = dt.timedelta(days=30)


DEFAULT_LIFETIMES = Lifetimes()


@dataclass(frozen=True, slots=True)
class CertBundle:
    """What the Secret holds, PEM-encoded."""

    ca_pem: bytes  # the CA bundle: the current CA first, then older ones still valid
    ca_key_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    @property
    def ca(self) -> x509.Certificate:
        """The current CA (first of the bundle)."""
        return x509.load_pem_x509_certificates(self.ca_pem)[0]

    @property
    def cert(self) -> x509.Certificate:
        """The serving certificate."""
        return x509.load_pem_x509_certificate(self.cert_pem)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def new_ca(now: dt.datetime, life: Lifetimes = DEFAULT_LIFETIMES) -> tuple[bytes, bytes]:
    """A self-signed CA: (certificate PEM, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    # The start time in the name keeps successive CAs apart in a bundle.
    name = _name(f"ballast-webhook-ca-{now.strftime('%Y%m%dT%H%M%S')}")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - SKEW)
        .not_valid_after(now + life.ca)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def issue_serving(
    ca_pem: bytes,
    ca_key_pem: bytes,
    hosts: Sequence[str],
    now: dt.datetime,
    life: Lifetimes = DEFAULT_LIFETIMES,
) -> tuple[bytes, bytes]:
    """A serving certificate for ``hosts`` signed by the CA: (certificate PEM, key PEM)."""
    ca = x509.load_pem_x509_certificates(ca_pem)[0]
    ca_key = serialization.load_pem_private_key(ca_key_pem, None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an ECDSA key")
    key = ec.generate_private_key(ec.SECP256R1())
    not_after = min(now + life.serving, ca.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0] if hosts else "ballast-webhook"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def fresh(
    hosts: Sequence[str], now: dt.datetime, life: Lifetimes = DEFAULT_LIFETIMES
) -> CertBundle:
    """A new CA and a serving certificate for ``hosts``."""
    ca_pem, ca_key_pem = new_ca(now, life)
    cert_pem, key_pem = issue_serving(ca_pem, ca_key_pem, hosts, now, life)
    return CertBundle(ca_pem, ca_key_pem, cert_pem, key_pem)


def covers(cert: x509.Certificate, hosts: Sequence[str]) -> bool:
    """Whether ``cert``'s subject alternative names include every host."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    names = set(san.get_values_for_type(x509.DNSName))
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    for h in hosts:
        try:
            if str(ipaddress.ip_address(h)) not in ips:
                return False
        except ValueError:
            if h not in names:
                return False
    return True


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """Whether ``ca`` issued ``cert`` (subject match and a valid signature)."""
    if cert.issuer != ca.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _valid_cas(pems: Sequence[x509.Certificate], now: dt.datetime) -> bytes:
    return b"".join(
        c.public_bytes(serialization.Encoding.PEM) for c in pems if c.not_valid_after_utc > now
    )


def plan(
    current: CertBundle | None,
    hosts: Sequence[str],
    now: dt.datetime,
    life: Lifetimes = DEFAULT_LIFETIMES,
) -> tuple[CertBundle, str]:
    """What the Secret should hold at ``now``, and why it changed ("" when it did not).

    Reasons: ``Created`` (nothing usable stored), ``Unreadable`` (garbage in
    the Secret: start over), ``CARotated`` (the CA nears its end: a new CA,
    the old one kept in the bundle), ``ServingRotated`` (the serving
    certificate nears its end, misses a host, or is not from the current CA).
    """
    if current is None:
        return fresh(hosts, now, life), "Created"
    try:
        cas = x509.load_pem_x509_certificates(current.ca_pem)
        cert = current.cert
        serialization.load_pem_private_key(current.key_pem, None)
        serialization.load_pem_private_key(current.ca_key_pem, None)
    except (ValueError, TypeError):
        return fresh(hosts, now, life), "Unreadable"
    ca = cas[0]
    if ca.not_valid_after_utc - now <= life.ca_renew_before:
        ca_pem, ca_key_pem = new_ca(now, life)
        bundle = ca_pem + _valid_cas(cas, now)
        cert_pem, key_pem = issue_serving(ca_pem, ca_key_pem, hosts, now, life)
        return CertBundle(bundle, ca_key_pem, cert_pem, key_pem), "CARotated"
    if (
        cert.not_valid_after_utc - now <= life.serving_renew_before
        or cert.not_valid_before_utc > now
        or not covers(cert, hosts)
        or not signed_by(cert, ca)
    ):
        cert_pem, key_pem = issue_serving(current.ca_pem, current.ca_key_pem, hosts, now, life)
        bundle = ca.public_bytes(serialization.Encoding.PEM) + _valid_cas(cas[1:], now)
        return CertBundle(bundle, current.ca_key_pem, cert_pem, key_pem), "ServingRotated"
    return current, ""


def renew_at(bundle: CertBundle, life: Lifetimes = DEFAULT_LIFETIMES) -> dt.datetime:
    """The instant :func:`plan` will next want to change ``bundle``."""
    return min(
        bundle.ca.not_valid_after_utc - life.ca_renew_before,
        bundle.cert.not_valid_after_utc - life.serving_renew_before,
    )


def secret_data(bundle: CertBundle) -> dict[str, str]:
    """The Secret's ``data`` (base64)."""
    raw = {
        TLS_CERT: bundle.cert_pem,
        TLS_KEY: bundle.key_pem,
        CA_CERT: bundle.ca_pem,
        CA_KEY: bundle.ca_key_pem,
    }
    return {k: base64.b64encode(v).decode() for k, v in raw.items()}


def from_secret(secret: Mapping[str, Any] | None) -> CertBundle | None:
    """The bundle a Secret holds; None when it is absent or lacks a key."""
    data = (secret or {}).get("data")
    if not isinstance(data, Mapping):
        return None
    try:
        raw = {
            k: base64.b64decode(str(data[k]), validate=True)
            for k in (TLS_CERT, TLS_KEY, CA_CERT, CA_KEY)
        }
    except (KeyError, binascii.Error, ValueError):
        return None
    return CertBundle(raw[CA_CERT], raw[CA_KEY], raw[TLS_CERT], raw[TLS_KEY])


def from_external_secret(secret: Mapping[str, Any] | None) -> CertBundle | None:
    """The bundle in a Secret someone else writes (cert-manager): no CA key; ``ca.crt`` optional.

    None while the Secret or its certificate and key are missing or unreadable.
    """
    data = (secret or {}).get("data")
    if not isinstance(data, Mapping):
        return None
    try:
        raw = {
            k: base64.b64decode(str(data.get(k) or ""), validate=True)
            for k in (TLS_CERT, TLS_KEY, CA_CERT)
        }
        if not raw[TLS_CERT] or not raw[TLS_KEY]:
            return None
        x509.load_pem_x509_certificate(raw[TLS_CERT])
    except (binascii.Error, ValueError):
        return None
    return CertBundle(raw[CA_CERT], b"", raw[TLS_CERT], raw[TLS_KEY])
