"""Certificates made in the test (mutual TLS): a CA, server certificates for 127.0.0.1 and
localhost, client certificates, and the TLS contexts of a server that demands one.

    pki = TestPki.create()
    server = pki.server_context()            # CERT_REQUIRED, trusting pki's CA only
    alice = pki.client("alice")              # .certificate_pem, .key_pem, .subject
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cardflow tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, as PEM."""

    certificate_pem: str
    key_pem: str
    subject: str  # RFC 4514

    def body_lines(self) -> list[str]:
        """The key's base64 lines (what a leak of part of it would show)."""
        return self.body_lines_of(self.key_pem)

    @staticmethod
    def body_lines_of(pem: str) -> list[str]:
        return [line for line in pem.splitlines() if line and "-----" not in line]


@dataclass(frozen=True)
class TestPki:
    __test__ = False  # not a test class, whatever its name

    ca_key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate

    @classmethod
    def create(cls, name: str = "cardflow test CA") -> TestPki:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        ca = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
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
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, ca)

    @property
    def ca_pem(self) -> str:
        return _pem(self.ca)

    def _issue(
        self,
        common_name: str,
        *,
        usage: x509.ObjectIdentifier,
        san: list[x509.GeneralName],
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - timedelta(hours=1))
            .not_valid_after(not_after or now + timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()),
                critical=False,
            )
            .sign(self.ca_key, hashes.SHA256())
        )
        return Issued(_pem(certificate), _key_pem(key), certificate.subject.rfc4514_string())

    def server(self) -> Issued:
        """A server certificate for 127.0.0.1, ::1 and localhost."""
        return self._issue(
            "localhost",
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
            san=[
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1")),
            ],
        )

    def client(
        self,
        common_name: str,
        *,
        dns: str | None = None,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> Issued:
        """A client certificate (with ``dns`` as a SAN, for RFC 8705 tls_client_auth_san_dns)."""
        return self._issue(
            common_name,
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
            san=[x509.DNSName(dns or f"{common_name}.clients.test")],
            not_before=not_before,
            not_after=not_after,
        )

    def server_context(self, *, require_client_certificate: bool = True) -> ssl.SSLContext:
        """A server's TLS context: its certificate from this CA, and (by default) a client
        certificate from this CA demanded in the handshake."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=self.ca_pem)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_certificate else ssl.CERT_NONE
        issued = self.server()
        load_chain(context, issued)
        return context


def load_chain(context: ssl.SSLContext, issued: Issued) -> None:
    """Load a certificate and key into a context (through a private temporary directory)."""
    with tempfile.TemporaryDirectory(prefix="cardflow-test-tls-") as folder:
        cert_path = os.path.join(folder, "cert.pem")
        key_path = os.path.join(folder, "key.pem")
        with open(cert_path, "w") as f:
            f.write(issued.certificate_pem)
        with open(key_path, "w") as f:
            f.write(issued.key_pem)
        context.load_cert_chain(cert_path, key_path)
