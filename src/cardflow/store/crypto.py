"""Envelope encryption of secrets: AES-256-GCM data keys wrapped by a master key.

A secret blob is ``b"v1" | key_id (4 bytes, big-endian) | nonce (12) | ciphertext+tag``.
The additional authenticated data binds each blob to where it is stored (for example
``connection:<id>:secrets``), so a blob copied to another row does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cardflow.errors import ConfigurationError

KEY_BYTES = 32
NONCE_BYTES = 12
_VERSION = b"v1"
_HEADER = len(_VERSION) + 4 + NONCE_BYTES


class DecryptionError(ConfigurationError):
    """A blob did not decrypt: wrong key, tampered data or a blob moved between rows."""


def parse_master_key(text: str) -> bytes:
    """Decode a master key given as 64 hex digits or base64 (standard or URL-safe)."""
    value = text.strip()
    if len(value) == 2 * KEY_BYTES:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    try:
        key = base64.urlsafe_b64decode(value.replace("+", "-").replace("/", "_") + "==")
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise ConfigurationError(
            "The master key must be 32 bytes, written as base64 or 64 hex digits "
            "(generate one with: openssl rand -base64 32)."
        )
    return key


def encode_master_key(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


def read_key_file(path: Path) -> bytes:
    """Read a key file, refusing one that other users can read."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigurationError(
            f"The master key file {path} is readable by other users (mode {mode:o}); "
            f"run: chmod 600 {path}"
        )
    return parse_master_key(path.read_text(encoding="ascii"))


def create_key_file(path: Path) -> bytes:
    """Create a new random master key file with mode 0600, failing if it exists."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = os.urandom(KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(encode_master_key(key) + "\n")
    return key


def wrap_key(master_key: bytes, data_key: bytes) -> bytes:
    """Encrypt a data key under the master key."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(master_key).encrypt(nonce, data_key, b"cardflow:data-key")


def unwrap_key(master_key: bytes, wrapped: bytes) -> bytes:
    try:
        return AESGCM(master_key).decrypt(
            wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], b"cardflow:data-key"
        )
    except InvalidTag:
        raise DecryptionError(
            "The master key does not match this database: its data keys do not decrypt. "
            "Use the CARDFLOW_MASTER_KEY or master.key file the database was created with."
        ) from None


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def encrypt(data_key: bytes, key_id: int, plaintext: bytes, aad: str) -> bytes:
    """Encrypt with a fresh random nonce."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    header = _VERSION + key_id.to_bytes(4, "big") + nonce
    return header + AESGCM(data_key).encrypt(nonce, plaintext, aad.encode())


def blob_key_id(blob: bytes) -> int:
    if len(blob) < _HEADER or not blob.startswith(_VERSION):
        raise DecryptionError("An encrypted value in the database is malformed.")
    return int.from_bytes(blob[2:6], "big")


def decrypt(data_key: bytes, blob: bytes, aad: str) -> bytes:
    blob_key_id(blob)
    nonce = blob[6:_HEADER]
    try:
        return AESGCM(data_key).decrypt(nonce, blob[_HEADER:], aad.encode())
    except InvalidTag:
        raise DecryptionError(
            "An encrypted value in the database does not decrypt (tampered, or moved between rows)."
        ) from None
