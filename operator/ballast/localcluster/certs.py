"""The local cluster's PKI: a CA, serving, admin and front-proxy certs, and an SA key.

Everything is generated with ``cryptography`` into one folder per cluster.
ECDSA P-256 keys keep generation fast on small machines; the service-account
signing key is RSA because that is what the API server's
``--service-account-signing-key-file`` is documented for.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVICE_IP = "10.0.0.1"  # the first address of --service-cluster-ip-range=10.0.0.0/24
SERVING_DNS = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
SERVING_IPS = ("127.0.0.1", SERVICE_IP)
VALIDITY = dt.timedelta(days=365)
PROXY_CLIENT_CN = "front-proxy-client"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True, slots=True)
class PKI:
    """Paths of the generated files, all PEM."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        """The CA certificate (``--client-ca-file``, ``--root-ca-file``, kubeconfig CA)."""
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        """The CA key (the controller manager signs CSRs with it)."""
        return self.directory / "ca.key"

    @property
    def serving_cert(self) -> Path:
        """The API server's serving certificate."""
        return self.directory / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        """The API server's serving key."""
        return self.directory / "apiserver.key"

    @property
    def admin_cert(self) -> Path:
        """The admin client certificate (CN=ballast-admin, O=system:masters)."""
        return self.directory / "admin.crt"

    @property
    def admin_key(self) -> Path:
        """The admin client key."""
        return self.directory / "admin.key"

    @property
    def proxy_cert(self) -> Path:
        """The aggregator's front-proxy client certificate (CN=front-proxy-client)."""
        return self.directory / "front-proxy-client.crt"

    @property
    def proxy_key(self) -> Path:
        """The front-proxy client key."""
        return self.directory / "front-proxy-client.key"

    @property
    def sa_key(self) -> Path:
        """The RSA key that signs service-account tokens."""
        return self.directory / "sa.key"

    @property
    def sa_pub(self) -> Path:
        """The public half of :attr:`sa_key` (``--service-account-key-file``)."""
        return self.directory / "sa.pub"


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, private: bool = False) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _certificate(
    subject: x509.Name,
    key: PrivateKey,
    issuer: x509.Name,
    issuer_key: PrivateKey,
    now: dt.datetime,
    *,
    ca: bool = False,
    usages: list[x509.ObjectIdentifier] | None = None,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))  # tolerate small clock skew
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=not ca,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def generate_pki(directory: Path, now: dt.datetime | None = None) -> PKI:
    """Write a fresh CA, serving cert, admin client cert and SA key pair into ``directory``."""
    now = now or dt.datetime.now(dt.UTC)
    directory.mkdir(parents=True, exist_ok=True)
    pki = PKI(directory)
    pem = serialization.Encoding.PEM

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("ballast-local-ca")
    ca = _certificate(ca_name, ca_key, ca_name, ca_key, now, ca=True)
    _write(pki.ca_cert, ca.public_bytes(pem))
    _write(pki.ca_key, _key_pem(ca_key), private=True)

    serving_key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in SERVING_DNS]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVING_IPS]
    serving = _certificate(
        _name("kube-apiserver"),
        serving_key,
        ca_name,
        ca_key,
        now,
        usages=[ExtendedKeyUsageOID.SERVER_AUTH],
        sans=sans,
    )
    _write(pki.serving_cert, serving.public_bytes(pem))
    _write(pki.serving_key, _key_pem(serving_key), private=True)

    admin_key = ec.generate_private_key(ec.SECP256R1())
    admin = _certificate(
        _name("ballast-admin", "system:masters"),
        admin_key,
        ca_name,
        ca_key,
        now,
        usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    _write(pki.admin_cert, admin.public_bytes(pem))
    _write(pki.admin_key, _key_pem(admin_key), private=True)

    # Lets the API server proxy to aggregated APIs, and gives the controller manager
    # and scheduler the requestheader CA they otherwise complain about in their logs.
    proxy_key = ec.generate_private_key(ec.SECP256R1())
    proxy = _certificate(
        _name(PROXY_CLIENT_CN),
        proxy_key,
        ca_name,
        ca_key,
        now,
        usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    _write(pki.proxy_cert, proxy.public_bytes(pem))
    _write(pki.proxy_key, _key_pem(proxy_key), private=True)

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write(pki.sa_key, _key_pem(sa_key), private=True)
    _write(
        pki.sa_pub,
        sa_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo),
    )
    return pki


def issue_leaf(
    pki: PKI,
    directory: Path,
    common_name: str,
    *,
    ips: tuple[str, ...] = (),
    dns: tuple[str, ...] = (),
    now: dt.datetime | None = None,
) -> Path:
    """Sign a server-and-client certificate with the cluster CA into ``directory``.

    Writes ``ca.crt``, ``tls.crt`` and ``tls.key`` (the layout KEDA's gRPC
    mTLS reads from its ``--cert-dir``); returns ``directory``.
    """
    now = now or dt.datetime.now(dt.UTC)
    directory.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise TypeError(f"{pki.ca_key}: unexpected key type")
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    cert = _certificate(
        _name(common_name),
        key,
        ca.subject,
        ca_key,
        now,
        usages=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        sans=sans or None,
    )
    _write(directory / "ca.crt", pki.ca_cert.read_bytes())
    _write(directory / "tls.crt", cert.public_bytes(pem))
    _write(directory / "tls.key", _key_pem(key), private=True)
    return directory
