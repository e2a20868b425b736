"""private_key_jwt (RFC 7523 §2.2) for both OAuth grants, against a real Authlib provider
that verifies each assertion's signature with the registered JWK, its claims, and that its
jti was never used before."""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from typer.testing import CliRunner

from cardflow.app import Cardflow
from cardflow.cards.runner import CardResult
from cardflow.cli import app as cli_app
from cardflow.credentials.client_assertion import load_signing_key
from cardflow.credentials.token_endpoint import (
    ClientCredentials,
    prepare_client_credentials_request,
)
from cardflow.errors import InvalidInput
from tests.conftest import RunningServer
from tests.integration.test_secrets_and_keys import _database_text
from tests.support.oauth_server import OAuthServer
from tests.support.provider_login import authorize_in_browser

BAD_PEM = "-----BEGIN PRIVATE KEY-----\nSENTINELxx\n-----END PRIVATE KEY-----"


def new_pem(kind: str) -> str:
    key = (
        rsa.generate_private_key(65537, 2048)
        if kind == "RS256"
        else ec.generate_private_key(ec.SECP256R1())
    )
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _me(cf: Cardflow, ref: str, oauth: OAuthServer) -> CardResult:
    return cf.test_card("api_connector.get", connection=ref, inputs={"url": f"{oauth.url}/api/me"})


def _cc_connection(cf: Cardflow, oauth: OAuthServer, pem: str, **extra: Any) -> tuple[str, str]:
    """A client_credentials connection with private_key_jwt; the provider registers the
    public JWK the connection shows. Returns (connection name, client_id)."""
    client_id = f"svc-{secrets.token_hex(3)}"
    name = f"cc-jwt-{client_id}"
    view = cf.connections.create(
        name,
        "client_credentials",
        {
            "token_url": oauth.token_url,
            "client_id": client_id,
            "token_auth_method": "private_key_jwt",
            "private_key": pem,
            "scope": "read",
            **extra,
        },
        ["127.0.0.1"],
    )
    jwk = view.config["public_jwk"]
    oauth.add_client(client_id, "", "private_key_jwt", scope="read", jwks={"keys": [jwk]})
    return name, client_id


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_client_credentials_with_a_signed_assertion(
    cf: Cardflow, oauth_server: OAuthServer, alg: str
) -> None:
    pem = new_pem(alg)
    name, client_id = _cc_connection(cf, oauth_server, pem)
    view = cf.connections.get(name)
    jwk = view.config["public_jwk"]
    assert jwk["alg"] == alg and jwk["use"] == "sig" and jwk["kid"]
    assert "d" not in jwk  # the public half only
    assert view.config["private_key"] == {"set": True}
    assert view.config["client_secret"] == {"set": False}  # not needed with a key

    oauth_server.expires_in = 1
    assert (first := _me(cf, name, oauth_server)).ok, first.error
    time.sleep(1.1)
    assert (second := _me(cf, name, oauth_server)).ok, second.error
    assert oauth_server.token_requests == 2
    # each request had its own assertion, as the provider checked them
    one, two = oauth_server.assertions
    assert one["iss"] == one["sub"] == client_id
    assert one["aud"] == oauth_server.token_url
    assert one["exp"] - one["iat"] == 60
    assert one["jti"] != two["jti"] and len(one["jti"]) >= 32
    assert oauth_server.replayed_assertions == 0
    header = oauth_server.assertion_headers[0]
    assert header["alg"] == alg and header["kid"] == jwk["kid"]


def test_key_id_given_is_the_kid(cf: Cardflow, oauth_server: OAuthServer) -> None:
    name, _ = _cc_connection(cf, oauth_server, new_pem("RS256"), key_id="cardflow-2026")
    assert cf.connections.get(name).config["public_jwk"]["kid"] == "cardflow-2026"
    assert _me(cf, name, oauth_server).ok
    assert oauth_server.assertion_headers[0]["kid"] == "cardflow-2026"


def test_a_key_the_provider_does_not_know_is_refused_with_its_error(
    cf: Cardflow, oauth_server: OAuthServer
) -> None:
    name, client_id = _cc_connection(cf, oauth_server, new_pem("RS256"))
    other = load_signing_key(new_pem("RS256")).public_jwk()
    oauth_server.add_client(client_id, "", "private_key_jwt", scope="read", jwks={"keys": [other]})
    failed = _me(cf, name, oauth_server)
    assert failed.error["type"] == "token_rejected"  # type: ignore[index]
    assert "invalid_client" in failed.error["message"]  # type: ignore[index]
    assert cf.connections.get(name).status == "error"


def test_the_provider_refuses_a_replayed_assertion(cf: Cardflow, oauth_server: OAuthServer) -> None:
    """The provider's jti check is real: the same assertion sent twice is refused. (That
    cardflow never sends one twice is test_client_credentials_with_a_signed_assertion.)"""
    pem = new_pem("ES256")
    _, client_id = _cc_connection(cf, oauth_server, pem)
    request = prepare_client_credentials_request(
        oauth_server.token_url,
        ClientCredentials(client_id, "", load_signing_key(pem)),
        scope="read",
        auth_method="private_key_jwt",
    )
    with httpx.Client() as client:
        first = client.post(request.url, headers=request.headers, content=request.body)
        again = client.post(request.url, headers=request.headers, content=request.body)
    assert first.status_code == 200, first.text
    assert again.status_code in (400, 401) and again.json()["error"] == "invalid_client"
    assert oauth_server.replayed_assertions == 1


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_authorization_code_and_refresh_with_a_signed_assertion(
    server: RunningServer, oauth_server: OAuthServer, alg: str
) -> None:
    oauth_server.expires_in = 1
    client_id = f"app-{secrets.token_hex(3)}"
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        created = client.post(
            "/api/v1/connections",
            json={
                "name": f"Provider - OAuth JWT - {client_id}",
                "auth_type": "oauth",
                "config": {
                    "authorize_url": oauth_server.authorize_url,
                    "token_url": oauth_server.token_url,
                    "client_id": client_id,
                    "token_auth_method": "private_key_jwt",
                    "private_key": new_pem(alg),
                    "scope": "read",
                },
            },
        )
        assert created.status_code == 201, created.text
        body = created.json()
        oauth_server.add_client(
            client_id,
            "",
            "private_key_jwt",
            scope="read write",
            grant_types=("authorization_code", "refresh_token"),
            redirect_uris=(f"{server.url}/oauth/callback",),
            jwks={"keys": [body["config"]["public_jwk"]]},
        )
        page = authorize_in_browser(client, f"/api/v1/connections/{body['id']}/authorize")
    assert "Connection ready" in page.text, page.text
    assert _me(server.cf, body["id"], oauth_server).ok
    time.sleep(1.1)
    refreshed = _me(server.cf, body["id"], oauth_server)
    assert refreshed.ok, refreshed.error
    # (a slow machine may refresh once more: every request still had its own assertion)
    assert oauth_server.code_exchanges == 1 and oauth_server.refresh_requests >= 1
    jtis = [claims["jti"] for claims in oauth_server.assertions]
    assert len(jtis) == oauth_server.token_requests and len(set(jtis)) == len(jtis)
    assert all(header["alg"] == alg for header in oauth_server.assertion_headers)


def test_private_key_is_checked_on_save_without_echoing_it(cf: Cardflow) -> None:
    base = {"token_url": "https://id.example/token", "client_id": "c"}
    pem = new_pem("RS256")
    weak = (
        rsa.generate_private_key(65537, 1024)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    public = (
        load_signing_key(pem)
        .key.as_pem(private=False)  # type: ignore[attr-defined]
        .decode()
    )
    p384 = (
        ec.generate_private_key(ec.SECP384R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    cases = {
        "not-a-key-SENTINEL-0001": "not a PEM private key",
        weak: "too weak",
        public: "not a private key",
        p384: "only P-256",
        pem.replace("MII", "M!I", 1): "not base64",
    }
    for value, said in cases.items():
        with pytest.raises(InvalidInput) as info:
            cf.connections.create(
                "k",
                "client_credentials",
                {**base, "token_auth_method": "private_key_jwt", "private_key": value},
            )
        assert info.value.field == "config.private_key"
        assert said in info.value.message
        for line in value.splitlines():
            if len(line) > 20 and not line.startswith("-----"):
                assert line not in info.value.message
        assert "SENTINEL" not in info.value.message
    with pytest.raises(InvalidInput) as info:
        cf.connections.create(
            "k", "client_credentials", {**base, "token_auth_method": "private_key_jwt"}
        )
    assert info.value.field == "config.private_key"
    # a key pasted into a one-line field (line breaks lost) is read all the same
    view = cf.connections.create(
        "k",
        "client_credentials",
        {**base, "token_auth_method": "private_key_jwt", "private_key": pem.replace("\n", " ")},
    )
    assert view.config["public_jwk"]["kty"] == "RSA"
    # the client secret is needed again with a client_secret method
    with pytest.raises(InvalidInput) as info:
        cf.connections.update("k", config={"token_auth_method": "client_secret_post"})
    assert info.value.field == "config.client_secret"


def test_the_rest_api_refuses_a_bad_key_with_a_422(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        response = client.post(
            "/api/v1/connections",
            json={
                "name": "bad key",
                "auth_type": "oauth",
                "config": {
                    "authorize_url": "https://id.example/authorize",
                    "token_url": "https://id.example/token",
                    "client_id": "c",
                    "token_auth_method": "private_key_jwt",
                    "private_key": BAD_PEM,
                },
            },
        )
        types = client.get("/api/v1/auth-types").json()
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "config.private_key"
    assert "SENTINEL" not in response.text
    fields = {f["name"]: f for t in types if t["name"] == "oauth" for f in t["fields"]}
    assert fields["client_secret"]["required"] is True
    assert fields["private_key"]["required"] is False and fields["private_key"]["secret"]
    assert fields["private_key"]["applies_when"] == {
        "field": "token_auth_method",
        "values": ["private_key_jwt"],
    }
    assert "private_key_jwt" in fields["token_auth_method"]["options"]


def test_the_private_key_never_shows(
    server: RunningServer,
    oauth_server: OAuthServer,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Any,
) -> None:
    caplog.set_level(logging.DEBUG)
    pem = new_pem("RS256")
    key_file = tmp_path / "key.pem"
    key_file.write_text(pem)
    cf = server.cf
    settings = cf.settings
    env = {
        "CARDFLOW_HOME": str(settings.home),
        "CARDFLOW_MASTER_KEY": settings.master_key.get_secret_value(),  # type: ignore[union-attr]
        "CARDFLOW_PUBLIC_URL": settings.public_url,
    }
    if settings.database_url:
        env["CARDFLOW_DATABASE_URL"] = settings.database_url
    runner = CliRunner()

    def cli(*args: str) -> str:
        result = runner.invoke(cli_app, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.output

    client_id = f"svc-{secrets.token_hex(3)}"
    name = f"cc-jwt-{client_id}"
    # a secret given as --set name=@file is pointed at --from-file, never taken
    refused = runner.invoke(
        cli_app,
        ["connection", "create", name, "--type", "client_credentials",
         "--set", f"private_key=@{key_file}"],
        env=env,
    )  # fmt: skip
    assert refused.exit_code != 0 and "--from-file private_key=" in refused.output
    cli_text = cli(
        "connection", "create", name, "--type", "client_credentials",
        "--set", f"token_url={oauth_server.token_url}", "--set", f"client_id={client_id}",
        "--set", "token_auth_method=private_key_jwt", "--set", "scope=read",
        "--from-file", f"private_key={key_file}", "--allowed-host", "127.0.0.1",
    )  # fmt: skip
    jwk = cf.connections.get(name).config["public_jwk"]
    assert json.dumps(jwk) in cli_text  # shown for registration, copyable
    oauth_server.add_client(client_id, "", "private_key_jwt", scope="read", jwks={"keys": [jwk]})
    assert _me(cf, name, oauth_server).ok
    # the provider refuses (an unknown key): the error path shows nothing either
    other = load_signing_key(new_pem("RS256")).public_jwk()
    oauth_server.add_client(client_id, "", "private_key_jwt", scope="read", jwks={"keys": [other]})
    cf.connections.update(name, config={"scope": "read "})  # a new token is needed
    assert not _me(cf, name, oauth_server).ok
    private = load_signing_key(pem).key.as_dict(private=True)
    body_lines = [line for line in pem.splitlines() if not line.startswith("-----")]
    sentinels = [pem, pem.replace("\n", "\\n"), private["d"], private["p"], *body_lines]

    cli_text += "".join(
        cli(*args)
        for args in (
            ("connection", "show", name),
            ("connection", "show", name, "--json"),
            ("connection", "list"),
            ("run", "list"),
        )
    )
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        api_text = "".join(
            client.get(path).text
            for path in ("/api/v1/connections", f"/api/v1/connections/{name}", "/api/v1/runs")
        )
        runs = client.get("/api/v1/runs").json()
        assert runs
        api_text += "".join(client.get(f"/api/v1/runs/{run['id']}").text for run in runs)
    logs = "\n".join(r.getMessage() for r in caplog.records)
    stored = _database_text(cf)
    for value in sentinels:
        assert value not in api_text
        assert value not in cli_text
        assert value not in logs
        assert value.encode() not in stored
