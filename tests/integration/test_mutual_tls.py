"""Mutual TLS (issue 13, RFC 8705) against loopback TLS servers that demand a client
certificate, with certificates made here: a connection's certificate is presented on its
card calls (and only on their origin), a call without it or with one the server does not
trust fails in the handshake with a clear message, what cannot work is refused on save
naming the field, and ``tls_client_auth`` gets tokens from the Authlib provider, which
checks the certificate against the one registered for the client (RFC 8705 §2.1.2).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cardflow.cli import app as cli_app
from tests.conftest import RunningServer
from tests.integration.test_private_key_jwt import new_pem
from tests.integration.test_secret_sentinels import Kit, Place, find_leaks
from tests.support.certificates import Issued, TestPki
from tests.support.oauth_server import OAuthServer
from tests.support.upstream import Upstream

TOKEN = "mtls-bearer-token"


@pytest.fixture(scope="module")
def pki() -> TestPki:
    return TestPki.create()


@pytest.fixture(scope="module")
def alice(pki: TestPki) -> Issued:
    return pki.client("alice")


@pytest.fixture(scope="module")
def demanding(pki: TestPki) -> Iterator[Upstream]:
    """An HTTPS API that refuses, in the TLS handshake, a client without a certificate
    from ``pki``'s CA."""
    with Upstream(ssl_context=pki.server_context()) as server:
        yield server


@pytest.fixture(scope="module")
def asking(pki: TestPki) -> Iterator[Upstream]:
    """Another origin, which asks for a client certificate but takes a client without one
    (so it can say whether one was presented)."""
    context = pki.server_context()
    context.verify_mode = ssl.CERT_OPTIONAL
    with Upstream(ssl_context=context) as server:
        yield server


@pytest.fixture
def tls_provider(pki: TestPki) -> Iterator[OAuthServer]:
    with OAuthServer(ssl_context=pki.server_context()) as provider:
        yield provider


def _api(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=server.headers, timeout=30)


def _tls(issued: Issued | None, pki: TestPki) -> dict[str, Any]:
    config: dict[str, Any] = {"ca_certificate": pki.ca_pem}
    if issued is not None:
        config.update(client_certificate=issued.certificate_pem, client_key=issued.key_pem)
    return config


def _create(
    client: httpx.Client, name: str, auth_type: str, config: dict[str, Any], hosts: list[str]
) -> httpx.Response:
    return client.post(
        "/api/v1/connections",
        json={"name": name, "auth_type": auth_type, "config": config, "allowed_hosts": hosts},
    )


def _get(client: httpx.Client, connection: str | None, url: str) -> dict[str, Any]:
    response = client.post(
        "/api/v1/cards/api_connector.get/test",
        json={"connection": connection, "inputs": {"url": url}},
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _host(upstream: Upstream | OAuthServer) -> str:
    return f"127.0.0.1:{upstream.port}"


def test_a_card_call_presents_the_connections_certificate_to_a_server_that_demands_one(
    server: RunningServer, pki: TestPki, alice: Issued, demanding: Upstream
) -> None:
    with _api(server) as client:
        created = _create(
            client,
            "Bank - mTLS + token",
            "bearer",
            {"token": TOKEN, **_tls(alice, pki)},
            [_host(demanding)],
        )
        assert created.status_code == 201, created.text
        config = created.json()["config"]
        shown = config["client_certificate"]
        assert shown["set"] is True and shown["subject"] == alice.subject
        assert shown["issuer"] == pki.ca.subject.rfc4514_string()
        assert len(shown["sha256"]) == 64 and shown["not_after"] > datetime.now(UTC).isoformat()
        assert config["client_key"] == {"set": True}
        assert config["ca_certificate"] == pki.ca_pem  # not a secret

        peer = _get(client, "Bank - mTLS + token", f"{demanding.url}/tls/peer")
        assert peer["ok"], peer
        assert peer["outputs"]["body"] == {"subject": alice.subject}
        echo = _get(client, "Bank - mTLS + token", f"{demanding.url}/echo/with-token")
        assert echo["ok"], echo
        assert demanding.requests[-1]["path"] == "/echo/with-token"
        sent = dict((k.lower(), v) for k, v in demanding.requests[-1]["headers"])
        assert sent["authorization"] == f"Bearer {TOKEN}"  # the auth type's header as well


def test_without_a_certificate_or_with_an_untrusted_one_the_handshake_fails_clearly(
    server: RunningServer, pki: TestPki, demanding: Upstream
) -> None:
    stranger = TestPki.create("another CA").client("mallory")
    before = len(demanding.requests)
    with _api(server) as client:
        assert _create(client, "Bank - CA only", "none", _tls(None, pki), []).status_code == 201
        assert (
            _create(client, "Bank - stranger", "none", _tls(stranger, pki), []).status_code == 201
        )
        no_certificate = _get(client, "Bank - CA only", f"{demanding.url}/tls/peer")
        untrusted = _get(client, "Bank - stranger", f"{demanding.url}/tls/peer")
        no_ca = _get(client, None, f"{demanding.url}/tls/peer")
    for result in (no_certificate, untrusted, no_ca):
        assert not result["ok"], result
        assert result["error"]["type"] == "connection_error", result
        assert f"GET {demanding.url}/tls/peer failed" in result["error"]["message"]
    assert "set the connection's client_certificate" in no_certificate["error"]["message"]
    assert "accepts the connection's client_certificate" in untrusted["error"]["message"]
    assert "certificate verify failed" in no_ca["error"]["message"]
    assert "set the connection's ca_certificate" in no_ca["error"]["message"]
    assert demanding.requests[before:] == []  # no request got through


def test_the_certificate_stays_on_its_origin_across_a_redirect(
    server: RunningServer, pki: TestPki, alice: Issued, demanding: Upstream, asking: Upstream
) -> None:
    with _api(server) as client:
        created = _create(
            client, "Bank - two hosts", "none", _tls(alice, pki), [_host(demanding), _host(asking)]
        )
        assert created.status_code == 201, created.text
        direct = _get(client, "Bank - two hosts", f"{asking.url}/tls/peer")
        assert direct["outputs"]["body"] == {"subject": alice.subject}  # it asks: it is given
        redirected = _get(
            client, "Bank - two hosts", f"{demanding.url}/redirect?to={asking.url}/tls/peer"
        )
    assert redirected["ok"], redirected
    assert redirected["outputs"]["body"] == {"subject": None}  # the CA still trusted, no cert


def _pem_error(response: httpx.Response) -> tuple[str, str]:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    return error["field"], error["message"]


def test_what_cannot_work_is_refused_on_save_naming_the_field(
    server: RunningServer, pki: TestPki, alice: Issued
) -> None:
    now = datetime.now(UTC)
    expired = pki.client("old", not_before=now - timedelta(days=9), not_after=now - timedelta(1))
    bob = pki.client("bob")
    cases: list[tuple[dict[str, Any], str, str]] = [
        (_tls(expired, pki), "config.client_certificate", "expired"),
        (
            {"client_certificate": alice.certificate_pem, "client_key": bob.key_pem},
            "config.client_key",
            "does not belong",
        ),
        ({"client_certificate": alice.certificate_pem}, "config.client_key", "both"),
        ({"client_key": alice.key_pem}, "config.client_certificate", "both"),
        (
            {"client_certificate": alice.key_pem, "client_key": alice.key_pem},
            "config.client_certificate",
            "not a PEM certificate",
        ),
        (
            {
                "client_certificate": alice.certificate_pem,
                "client_key": alice.key_pem.replace(alice.body_lines()[1], "A" * 64),
            },
            "config.client_key",
            "cannot be read",
        ),
        ({"ca_certificate": "-----BEGIN CERTIFICATE-----\nnope\n"}, "config.ca_certificate", ""),
        ({"client_key": "x" * 20000}, "config.client_key", "at most"),
    ]
    with _api(server) as client:
        for config, field, words in cases:
            response = _create(client, "Refused", "none", config, [])
            assert _pem_error(response)[0] == field, response.text
            assert words in _pem_error(response)[1], response.text
            for line in alice.body_lines() + bob.body_lines():
                assert line not in response.text
        # tls_client_auth without a certificate; the secret methods without a secret
        cc = {"token_url": "https://127.0.0.1:9/token", "client_id": "svc"}
        method = {"token_auth_method": "tls_client_auth"}
        no_cert = _create(client, "Refused", "client_credentials", {**cc, **method}, [])
        assert _pem_error(no_cert) == (
            "config.client_certificate",
            "config.client_certificate: this field is required with token_auth_method "
            "tls_client_auth",
        )
        no_secret = _create(client, "Refused", "client_credentials", cc, [])
        assert _pem_error(no_secret)[0] == "config.client_secret"
        assert client.get("/api/v1/connections").json() == []


def test_a_certificate_is_replaced_or_removed_by_an_update(
    server: RunningServer, pki: TestPki, alice: Issued, demanding: Upstream
) -> None:
    bob = pki.client("bob")
    with _api(server) as client:
        created = _create(client, "Rotating", "none", _tls(alice, pki), [_host(demanding)])
        assert created.status_code == 201, created.text
        url = f"{demanding.url}/tls/peer"
        assert _get(client, "Rotating", url)["outputs"]["body"]["subject"] == alice.subject
        new = {"client_certificate": bob.certificate_pem, "client_key": bob.key_pem}
        rotated = client.patch("/api/v1/connections/Rotating", json={"config": new})
        assert rotated.json()["config"]["client_certificate"]["subject"] == bob.subject
        assert _get(client, "Rotating", url)["outputs"]["body"]["subject"] == bob.subject
        # a certificate alone would not match the stored key
        half = client.patch(
            "/api/v1/connections/Rotating",
            json={"config": {"client_certificate": alice.certificate_pem}},
        )
        assert _pem_error(half)[0] == "config.client_key"
        removed = client.patch(
            "/api/v1/connections/Rotating",
            json={"config": {"client_certificate": "", "client_key": ""}},
        )
        assert removed.status_code == 200, removed.text
        # shown only where it is used
        assert not {"client_certificate", "client_key"} & set(removed.json()["config"])
        assert not _get(client, "Rotating", url)["ok"]


def test_tls_client_auth_gets_a_client_credentials_token_with_the_certificate_alone(
    server: RunningServer,
    pki: TestPki,
    alice: Issued,
    demanding: Upstream,
    tls_provider: OAuthServer,
) -> None:
    bob = pki.client("bob")  # trusted by the TLS server, but not this client's certificate
    tls_provider.add_client(
        "svc-dn", "", "tls_client_auth", scope="read", tls_client_auth_subject_dn=alice.subject
    )
    tls_provider.add_client(
        "svc-san",
        "",
        "tls_client_auth",
        scope="read",
        tls_client_auth_san_dns="alice.clients.test",
    )
    with _api(server) as client:
        for client_id, issued in (("svc-dn", alice), ("svc-san", alice), ("svc-dn", bob)):
            config = {
                "token_url": tls_provider.token_url,
                "client_id": client_id,
                "token_auth_method": "tls_client_auth",
                "scope": "read",
                **_tls(issued, pki),
            }
            name = f"IdP - {client_id} - {issued.subject}"
            created = _create(client, name, "client_credentials", config, [_host(demanding)])
            assert created.status_code == 201, created.text
            assert created.json()["config"]["client_secret"] == {"set": False}
        issued_before = len(tls_provider.issued_tokens)
        for client_id in ("svc-dn", "svc-san"):
            result = _get(client, f"IdP - {client_id} - {alice.subject}", f"{demanding.url}/echo")
            assert result["ok"], result
            sent = dict((k.lower(), v) for k, v in demanding.requests[-1]["headers"])
            assert sent["authorization"] == f"Bearer {tls_provider.issued_tokens[-1]}"
        assert len(tls_provider.issued_tokens) == issued_before + 2
        refused = _get(client, f"IdP - svc-dn - {bob.subject}", f"{demanding.url}/echo")
    assert not refused["ok"], refused
    assert "invalid_client" in refused["error"]["message"], refused
    assert len(tls_provider.issued_tokens) == issued_before + 2


def test_client_authentication_over_mutual_tls_also_revokes_with_the_certificate(
    server: RunningServer, pki: TestPki, alice: Issued, tls_provider: OAuthServer
) -> None:
    """The two client authentications issue 13 adds, each with a client certificate at a
    provider that demands one: tls_client_auth (the certificate alone authenticates) and
    private_key_jwt (an assertion, over the certificate). Deleting either connection revokes
    its token at the revocation URL, presenting the certificate there too."""
    tls_provider.add_client(
        "svc-tls", "", "tls_client_auth", scope="read", tls_client_auth_subject_dn=alice.subject
    )
    common = {
        "token_url": tls_provider.token_url,
        "revocation_url": tls_provider.revocation_url,
        "scope": "read",
        **_tls(alice, pki),
    }
    with _api(server) as client:
        by_certificate = {**common, "client_id": "svc-tls", "token_auth_method": "tls_client_auth"}
        created = _create(client, "IdP - tls", "client_credentials", by_certificate, [])
        assert created.status_code == 201, created.text
        jwt = {
            **common,
            "client_id": "svc-jwt",
            "token_auth_method": "private_key_jwt",
            "private_key": new_pem("ES256"),
        }
        created = _create(client, "IdP - jwt", "client_credentials", jwt, [])
        assert created.status_code == 201, created.text
        tls_provider.add_client(
            "svc-jwt",
            "",
            "private_key_jwt",
            jwks={"keys": [created.json()["config"]["public_jwk"]]},
        )
        for name, client_id in (("IdP - tls", "svc-tls"), ("IdP - jwt", "svc-jwt")):
            result = _get(client, name, f"{tls_provider.url}/api/me")
            assert result["ok"], result
            assert result["outputs"]["body"]["client_id"] == client_id, result
        assert tls_provider.assertions[-1]["aud"] == tls_provider.token_url
        revoked_before = len(tls_provider.revocations)
        for name in ("IdP - tls", "IdP - jwt"):
            deleted = client.delete(f"/api/v1/connections/{name}")
            assert deleted.status_code == 200, deleted.text
            assert deleted.json()["revocation"] == {
                "revoked": True,
                "tokens": ["access_token"],
                "error": None,
            }, deleted.text
    assert tls_provider.revocations[revoked_before:] == ["access_token", "access_token"]
    assert tls_provider.assertions[-1]["aud"] == tls_provider.revocation_url


def test_the_cli_reads_fields_from_files_within_their_limits(
    server: RunningServer, pki: TestPki, alice: Issued, tmp_path: Path
) -> None:
    """--from-file is the one way to give a field from a file: a secret or not, UTF-8, at
    most the field's own limit; a certificate tls_client_auth needs is asked for by name."""
    settings = server.cf.settings
    env = {
        "CARDFLOW_HOME": str(settings.home),
        "CARDFLOW_MASTER_KEY": settings.master_key.get_secret_value(),  # type: ignore[union-attr]
        "CARDFLOW_PUBLIC_URL": settings.public_url,
    }
    if settings.database_url:
        env["CARDFLOW_DATABASE_URL"] = settings.database_url
    files = {
        "client.pem": alice.certificate_pem,
        "client.key": alice.key_pem,
        "big.key": "A" * (16 * 1024 + 1),
        "scope.txt": "read write\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "client.der").write_bytes(b"\x30\x82\xff\xfe")

    def create(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(
            cli_app,
            ["connection", "create", "cli-files", "--type", "client_credentials",
             "--set", "token_url=http://127.0.0.1:9/token", "--set", "client_id=svc",
             "--set", "token_auth_method=tls_client_auth", *args],
            env=env,
        )  # fmt: skip
        return result.exit_code, " ".join(result.output.split())

    code, said = create()
    assert code != 0 and "config.client_certificate" in said, said
    assert "--from-file client_certificate=PATH" in said, said
    cert = f"client_certificate={tmp_path / 'client.pem'}"
    code, said = create("--from-file", cert, "--from-file", f"client_key={tmp_path / 'big.key'}")
    assert code != 0 and "larger than 16,384 bytes" in said, said
    code, said = create("--from-file", cert, "--from-file", f"client_key={tmp_path / 'client.der'}")
    assert code != 0 and "not UTF-8" in said, said
    code, said = create(
        "--from-file", cert,
        "--from-file", f"client_key={tmp_path / 'client.key'}",
        "--from-file", f"scope={tmp_path / 'scope.txt'}",
        "--json",
    )  # fmt: skip
    assert code == 0, said
    made = json.loads(said)
    assert made["config"]["scope"] == "read write"  # a one-line file's line break dropped
    assert made["config"]["client_certificate"]["subject"] == alice.subject
    assert alice.body_lines()[1] not in said


# -- the key (and the certificate) kept out of everything ---------------------------------


def test_the_client_key_and_certificate_are_kept_out_of_everything(
    server: RunningServer,
    upstream: Upstream,
    oauth_server: OAuthServer,
    captured_logs: pytest.LogCaptureFixture,
    pki: TestPki,
    demanding: Upstream,
    tmp_path: Path,
) -> None:
    kit = Kit(server, upstream, oauth_server, captured_logs)
    holder = pki.client("sentinel-holder")
    bob = pki.client("bob")
    for who, issued in (("holder", holder), ("bob", bob)):
        kit.add(f"{who}'s key (PEM)", issued.key_pem)
        kit.add(f"{who}'s certificate (PEM)", issued.certificate_pem)
        for number, line in enumerate(issued.body_lines()):
            kit.add(f"{who}'s key, line {number}", line)
    for number, line in enumerate(Issued.body_lines_of(holder.certificate_pem)):
        if line not in pki.ca_pem:  # (the issuer's name, encoded as in the CA's certificate)
            kit.add(f"holder's certificate, line {number}", line)
    try:
        connection = kit.connection("mTLS", "bearer", {"token": TOKEN, **_tls(holder, pki)})
        peer = kit.card_test(connection, f"{demanding.url}/tls/peer")
        assert peer["outputs"]["body"] == {"subject": holder.subject}, peer
        failed = kit.card_test(connection, f"{demanding.url}/reflect?status=401")
        assert failed["error"]["status_code"] == 401, failed
        # a refused update names the field, not the key it was given
        refused = kit.api.patch(
            f"/api/v1/connections/{connection}", json={"config": {"client_key": bob.key_pem}}
        )
        assert refused.json()["error"]["field"] == "config.client_key", refused.text
        flow = kit.flow(
            {
                "name": "mtls sentinel",
                "trigger": {"type": "manual"},
                "save_data": True,
                "cards": [
                    {
                        "id": "peer",
                        "card": "api_connector.get",
                        "connection": connection,
                        "inputs": {"url": f"{demanding.url}/tls/peer"},
                    },
                    {
                        "id": "echo",
                        "card": "api_connector.get",
                        "connection": connection,
                        "inputs": {"url": f"{demanding.url}/echo"},
                    },
                ],
            }
        )
        manual = kit.api.post(f"/api/v1/flows/{flow['id']}/runs", json={"inputs": {}})
        assert manual.status_code == 201, manual.text
        run = manual.json()
        kit.run_ids.append(run["id"])
        assert [card["status"] for card in run["cards"]] == ["succeeded"] * 2, run

        # the CLI, on the server's database: create from files, show, list
        settings = server.cf.settings
        env = {
            "CARDFLOW_HOME": str(settings.home),
            "CARDFLOW_MASTER_KEY": settings.master_key.get_secret_value(),  # type: ignore[union-attr]
            "CARDFLOW_PUBLIC_URL": settings.public_url,
        }
        if settings.database_url:
            env["CARDFLOW_DATABASE_URL"] = settings.database_url
        (tmp_path / "client.pem").write_text(holder.certificate_pem)
        (tmp_path / "client.key").write_text(holder.key_pem)
        (tmp_path / "ca.pem").write_text(pki.ca_pem)
        runner = CliRunner()
        outputs = []
        for args in (
            [
                "connection", "create", "cli mtls", "--type", "none",
                "--from-file", f"client_certificate={tmp_path / 'client.pem'}",
                "--from-file", f"client_key={tmp_path / 'client.key'}",
                "--from-file", f"ca_certificate={tmp_path / 'ca.pem'}",
                "--allowed-host", _host(demanding),
            ],
            ["connection", "show", "cli mtls"],
            ["connection", "show", "cli mtls", "--json"],
            ["connection", "list"],
            ["connection", "list", "--json"],
        ):  # fmt: skip
            result = runner.invoke(cli_app, args, env=env)
            assert result.exit_code == 0, result.output
            outputs.append(result.output)
        shown = json.loads(outputs[2])
        assert shown["config"]["client_certificate"]["subject"] == holder.subject
        assert holder.subject in outputs[1] and "PEM, 1 certificate" in outputs[1]
        kit.connection_ids.append(shown["id"])
        cli_peer = kit.card_test(shown["id"], f"{demanding.url}/tls/peer")
        assert cli_peer["outputs"]["body"] == {"subject": holder.subject}, cli_peer
        cli_place = Place("the CLI's output", "\n".join(outputs))
        leaks = find_leaks(cli_place, kit.secrets.values())
        assert not leaks, leaks
        kit.assert_nothing_leaked()
    finally:
        kit.api.close()
