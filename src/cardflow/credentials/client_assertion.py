"""Client authentication with a signed JWT: ``private_key_jwt`` (RFC 7523 §2.2, OIDC Core §9).

The client holds a private key (PEM: RSA signs RS256, EC P-256 signs ES256); the provider
holds the matching public JWK. Each token request carries a fresh assertion — iss = sub =
client_id, aud = the endpoint's URL, a unique ``jti``, ``iat`` and an ``exp`` a minute
later — signed by Authlib (on joserfc). Messages about a key never contain any of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc7523 import private_key_jwt_sign
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from joserfc.jwk import ECKey, RSAKey

ASSERTION_LIFETIME = 60  # seconds; the assertion is made for one request, sent at once
MAX_PEM_CHARS = 16_384  # an RSA 8192 key is about 6,400
MAX_KEY_ID_CHARS = 200
MIN_RSA_BITS = 2048

_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_PRIVATE_LABELS = ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY")


def normalize_pem(text: str) -> str:
    """The private key as a clean PEM block, or ValueError saying what is wrong.

    A key pasted into a one-line field loses its line breaks, and one kept in an
    environment variable may have ``\\n`` written out: both are put back."""
    if len(text) > MAX_PEM_CHARS:
        raise ValueError(f"the key is longer than {MAX_PEM_CHARS} characters")
    match = _PEM.search(text.replace("\\n", "\n"))
    if match is None:
        raise ValueError(
            "not a PEM private key: paste the whole file, from -----BEGIN PRIVATE KEY----- "
            "to -----END PRIVATE KEY-----"
        )
    label, body = match.group(1), match.group(2)
    if label == "ENCRYPTED PRIVATE KEY" or "ENCRYPTED" in body:
        raise ValueError(
            "the key is encrypted with a passphrase; give it unencrypted "
            "(openssl pkey -in key.pem -out plain-key.pem)"
        )
    if label not in _PRIVATE_LABELS:
        raise ValueError(
            f"this is a PEM {label.lower()}, not a private key: give the private key "
            "(-----BEGIN PRIVATE KEY-----); the provider gets the public JWK cardflow shows"
        )
    compact = "".join(body.split())
    if not _BASE64.fullmatch(compact):
        raise ValueError("the PEM body is not base64")
    lines = [compact[i : i + 64] for i in range(0, len(compact), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""])


@dataclass(frozen=True)
class SigningKey:
    """A client's private key, ready to sign assertions."""

    key: RSAKey | ECKey
    alg: str
    kid: str

    def public_jwk(self) -> dict[str, Any]:
        """The public JWK to register with the provider (no private member)."""
        jwk: dict[str, Any] = dict(self.key.as_dict(private=False))
        jwk.update(kid=self.kid, alg=self.alg, use="sig")
        return jwk


def load_signing_key(pem: str, key_id: str | None = None) -> SigningKey:
    """Read a PEM private key (RSA of 2048 bits or more, or EC P-256); ValueError otherwise."""
    clean = normalize_pem(pem)
    try:
        private = load_pem_private_key(clean.encode("ascii"), password=None)
    except TypeError:  # cryptography: "Password was not given but private key is encrypted"
        raise ValueError(
            "the key is encrypted with a passphrase; give it unencrypted "
            "(openssl pkey -in key.pem -out plain-key.pem)"
        ) from None
    except (ValueError, UnicodeError):
        raise ValueError("the PEM block could not be read as a private key") from None
    key: RSAKey | ECKey
    if isinstance(private, rsa.RSAPrivateKey):
        if private.key_size < MIN_RSA_BITS:
            raise ValueError(
                f"an RSA key of {private.key_size} bits is too weak: RS256 needs "
                f"{MIN_RSA_BITS} bits or more"
            )
        key, alg = RSAKey.import_key(private), "RS256"
    elif isinstance(private, ec.EllipticCurvePrivateKey):
        if not isinstance(private.curve, ec.SECP256R1):
            raise ValueError(
                f"an EC key on curve {private.curve.name}: only P-256 (ES256) is supported"
            )
        key, alg = ECKey.import_key(private), "ES256"
    else:
        raise ValueError(
            f"unsupported key type ({type(private).__name__.removesuffix('PrivateKey')}): "
            "give an RSA (RS256) or EC P-256 (ES256) key"
        )
    return SigningKey(key, alg, key_id or key.thumbprint())


def check_key_id(value: str | None) -> str | None:
    """A ``kid`` as typed (None or empty: the key's thumbprint)."""
    if not value:
        return None
    if len(value) > MAX_KEY_ID_CHARS:
        raise ValueError(f"longer than {MAX_KEY_ID_CHARS} characters")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError("must not contain control characters")
    return value


def sign_client_assertion(key: SigningKey, *, client_id: str, audience: str) -> str:
    """A fresh client assertion for one request to ``audience`` (the endpoint's URL)."""
    assertion: str = private_key_jwt_sign(
        key.key,
        client_id,
        audience,
        alg=key.alg,
        header={"kid": key.kid, "typ": "JWT"},
        expires_in=ASSERTION_LIFETIME,
    )
    return assertion


def pem_values(pem: str) -> list[str]:
    """A private key as it could leak: the PEM as given, cleaned, and each body line."""
    values = [pem]
    try:
        clean = normalize_pem(pem)
    except ValueError:
        return values
    values.append(clean)
    values.extend(line for line in clean.splitlines() if line and not line.startswith("-----"))
    return values
