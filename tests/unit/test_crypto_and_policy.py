from __future__ import annotations

import ipaddress
import os
import stat
from pathlib import Path

import pytest

from cardflow.errors import ConfigurationError, NetworkDenied
from cardflow.net.policy import NetworkPolicy
from cardflow.settings import DEFAULT_DENY_NETWORKS, Settings, parse_networks
from cardflow.store import crypto


def test_encrypt_uses_fresh_nonce_and_binds_aad() -> None:
    key = crypto.new_data_key()
    a = crypto.encrypt(key, 1, b"secret", "connection:a:secrets")
    b = crypto.encrypt(key, 1, b"secret", "connection:a:secrets")
    assert a != b
    assert crypto.decrypt(key, a, "connection:a:secrets") == b"secret"
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(key, a, "connection:b:secrets")
    tampered = a[:-1] + bytes([a[-1] ^ 1])
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(key, tampered, "connection:a:secrets")


def test_wrong_master_key_is_a_clear_error() -> None:
    wrapped = crypto.wrap_key(os.urandom(32), crypto.new_data_key())
    with pytest.raises(ConfigurationError, match="master key does not match"):
        crypto.unwrap_key(os.urandom(32), wrapped)


def test_key_file_is_created_private_and_refused_when_readable(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    key = crypto.create_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert crypto.read_key_file(path) == key
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        crypto.read_key_file(path)


@pytest.mark.parametrize("text", ["short", "zz" * 32, ""])
def test_bad_master_key_text(text: str) -> None:
    with pytest.raises(ConfigurationError, match="32 bytes"):
        crypto.parse_master_key(text)


def test_master_key_hex_and_base64() -> None:
    raw = bytes(range(32))
    assert crypto.parse_master_key(raw.hex()) == raw
    assert crypto.parse_master_key(crypto.encode_master_key(raw)) == raw


# The default deny list is checked as a pure function: no request ever goes to these.
@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("169.254.169.254", False),  # cloud metadata
        ("169.254.0.1", False),
        ("fe80::1", False),
        ("::ffff:169.254.169.254", False),  # IPv4-mapped form of metadata
        ("127.0.0.1", True),
        ("::1", True),
        ("8.8.8.8", True),
    ],
)
def test_default_deny_list(address: str, allowed: bool) -> None:
    policy = NetworkPolicy(parse_networks(DEFAULT_DENY_NETWORKS))
    assert policy.is_allowed(ipaddress.ip_address(address)) is allowed


def test_allow_list_makes_exceptions() -> None:
    policy = NetworkPolicy(parse_networks("127.0.0.0/8"), parse_networks("127.0.0.2/32"))
    assert not policy.is_allowed(ipaddress.ip_address("127.0.0.1"))
    assert policy.is_allowed(ipaddress.ip_address("127.0.0.2"))
    with pytest.raises(NetworkDenied, match="not allowed"):
        policy.check("example.test", ["127.0.0.1", "127.0.0.2"])


def test_settings_parse_network_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARDFLOW_DENY_NETWORKS", "127.0.0.0/8, 10.0.0.0/8")
    monkeypatch.setenv("CARDFLOW_ALLOW_NETWORKS", "")
    settings = Settings()
    assert [str(n) for n in settings.deny_networks] == ["127.0.0.0/8", "10.0.0.0/8"]
    assert settings.allow_networks == ()


def test_public_url_follows_host_and_port_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARDFLOW_PUBLIC_URL", raising=False)
    assert Settings().public_url == "http://127.0.0.1:8080"
    assert Settings(port=9000).public_url == "http://127.0.0.1:9000"
    assert Settings(host="0.0.0.0", port=81).public_url == "http://127.0.0.1:81"
    assert Settings(host="::", port=81).public_url == "http://[::1]:81"
    assert Settings(port=9000, public_url="https://cf.example").public_url == "https://cf.example"
    monkeypatch.setenv("CARDFLOW_PUBLIC_URL", "https://env.example")
    assert Settings(port=9000).public_url == "https://env.example"
