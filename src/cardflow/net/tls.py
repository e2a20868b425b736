"""Client certificates (mutual TLS, RFC 8705): PEM checked on save, and the TLS contexts a
connection's calls use.

A connection may carry a client certificate (with its chain), the matching private key and
a CA bundle for a private server CA. :func:`client_tls` builds, once per connection
version, a :class:`ClientTls`: ``identity`` presents the certificate (on the connection's
own origin, its token endpoint), ``trust`` only verifies servers with the bundle (a
redirect to another origin never presents the certificate, as it never carries the auth
headers).

Python's ``ssl`` loads a key only from a file: the key goes, re-encrypted with a password
that exists only in memory, into an anonymous memory file (``memfd_create``) or, where
there is none, a private temporary file removed as soon as it is read.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

# Bounds on what a connection may carry (a chain of a few certificates, one key, a bundle).
MAX_CERTIFICATE_CHARS = 64 * 1024
MAX_KEY_CHARS = 16 * 1024
MAX_CA_CHARS = 512 * 1024
MAX_CHAIN_CERTIFICATES = 10

_SUPPORTED_KEYS = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)


class CertificateProblem(ValueError):
    """A client certificate, key or CA bundle that cannot be used; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class CertificateSummary:
    """What may be shown of a client certificate (never its key)."""

    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    sha256: str  # fingerprint of the DER certificate, hex

    def to_json(self) -> dict[str, str]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "sha256": self.sha256,
        }


@dataclass(frozen=True, eq=False)
class ClientTls:
    """A connection's TLS contexts: one presenting its certificate, one only trusting."""

    identity: ssl.SSLContext
    # For other origins: the bundle without the certificate, or True (the default trust).
    trust: ssl.SSLContext | bool
    not_after: datetime | None  # the certificate's expiry (None: no certificate)

    def expired(self, now: datetime | None = None) -> bool:
        return self.not_after is not None and (now or datetime.now(UTC)) > self.not_after


def _certificates(field: str, pem: str) -> list[x509.Certificate]:
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise CertificateProblem(
            field, "not a PEM certificate (expected -----BEGIN CERTIFICATE-----)"
        )
    try:
        found = x509.load_pem_x509_certificates(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise CertificateProblem(field, "the PEM certificate cannot be read") from None
    if len(found) > MAX_CHAIN_CERTIFICATES and field != "ca_certificate":
        raise CertificateProblem(
            field, f"more than {MAX_CHAIN_CERTIFICATES} certificates in the chain"
        )
    return found


def _private_key(field: str, pem: str) -> PrivateKeyTypes:
    if "PRIVATE KEY-----" not in pem:
        raise CertificateProblem(
            field, "not a PEM private key (expected -----BEGIN PRIVATE KEY----- or similar)"
        )
    if "ENCRYPTED" in pem or "Proc-Type: 4,ENCRYPTED" in pem:
        raise CertificateProblem(
            field,
            "the private key is encrypted with a passphrase; give it unencrypted "
            "(cardflow stores it encrypted)",
        )
    try:
        key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError):
        # never repeat what the library says: it may quote the key
        raise CertificateProblem(field, "the PEM private key cannot be read") from None
    if not isinstance(key, _SUPPORTED_KEYS):
        raise CertificateProblem(field, "only RSA, EC and EdDSA keys are supported")
    return key


def _public_der(key: object) -> bytes:
    public_bytes = getattr(key, "public_bytes")  # noqa: B009 - every public key type has it
    der: bytes = public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def _summary(certificate: x509.Certificate) -> CertificateSummary:
    return CertificateSummary(
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        sha256=hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest(),
    )


def summarize_certificate(certificate_pem: str) -> CertificateSummary:
    """The leaf certificate's subject, issuer, validity and fingerprint."""
    return _summary(_certificates("client_certificate", certificate_pem)[0])


def check_client_certificate(
    certificate_pem: str, key_pem: str, *, now: datetime | None = None
) -> CertificateSummary:
    """Check a client certificate (leaf first, then its chain) and key before they are
    saved: both PEM, the key the certificate's, the certificate valid now."""
    chain = _certificates("client_certificate", certificate_pem)
    key = _private_key("client_key", key_pem)
    leaf = chain[0]
    if _public_der(key.public_key()) != _public_der(leaf.public_key()):
        raise CertificateProblem(
            "client_key",
            "this private key does not belong to the client certificate "
            "(the first certificate in client_certificate)",
        )
    summary = _summary(leaf)
    moment = now or datetime.now(UTC)
    if moment > summary.not_after:
        raise CertificateProblem(
            "client_certificate",
            f"the client certificate expired on {summary.not_after:%Y-%m-%d %H:%M} UTC",
        )
    if moment < summary.not_before:
        raise CertificateProblem(
            "client_certificate",
            f"the client certificate is not valid before {summary.not_before:%Y-%m-%d %H:%M} UTC",
        )
    return summary


def check_ca_certificates(ca_pem: str) -> int:
    """Check a CA bundle; the number of certificates in it."""
    found = _certificates("ca_certificate", ca_pem)
    try:
        ssl.create_default_context(cadata=ca_pem)
    except ssl.SSLError:
        raise CertificateProblem("ca_certificate", "the CA bundle cannot be loaded") from None
    return len(found)


def common_name(certificate_pem: str) -> str | None:
    """The leaf certificate's subject common name, if it has one."""
    names = _certificates("client_certificate", certificate_pem)[0].subject.get_attributes_for_oid(
        NameOID.COMMON_NAME
    )
    return str(names[0].value) if names else None


def client_tls(certificate_pem: str | None, key_pem: str | None, ca_pem: str | None) -> ClientTls:
    """The TLS contexts for a connection's certificate (both or neither) and CA bundle."""
    identity = _context(ca_pem)
    not_after = None
    if certificate_pem and key_pem:
        key = _private_key("client_key", key_pem)
        not_after = summarize_certificate(certificate_pem).not_after
        password = secrets.token_bytes(32)
        sealed = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )
        with (
            _memory_file(certificate_pem.encode("ascii")) as cert_path,
            _memory_file(sealed) as key_path,
        ):
            identity.load_cert_chain(cert_path, key_path, password=password)
    trust: ssl.SSLContext | bool = _context(ca_pem) if ca_pem else True
    return ClientTls(identity, trust, not_after)


def _context(ca_pem: str | None) -> ssl.SSLContext:
    """Verifying servers against the bundle when there is one (it replaces the system's
    trust, as curl's --cacert does), else against the system's."""
    if ca_pem:
        return ssl.create_default_context(cadata=ca_pem)
    return ssl.create_default_context()


@contextlib.contextmanager
def _memory_file(data: bytes) -> Iterator[str]:
    """A path to ``data`` that lives in memory (Linux) or, elsewhere, a private temporary
    file (0600) removed as soon as the block ends."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None and os.path.isdir("/proc/self/fd"):
        fd = memfd_create("cardflow-tls", getattr(os, "MFD_CLOEXEC", 0))
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    fd, path = tempfile.mkstemp(prefix="cardflow-tls-")  # created 0600
    try:
        os.write(fd, data)
        os.close(fd)
        fd = -1
        yield path
    finally:
        if fd >= 0:
            os.close(fd)
        os.unlink(path)
