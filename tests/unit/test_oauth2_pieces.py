"""Pure OAuth 2.0 pieces: authorization URL, token requests and responses."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest

from cardflow.credentials.authorize_endpoint import (
    build_authorization_url,
    new_code_verifier,
    prepare_authorization_code_request,
)
from cardflow.credentials.token_endpoint import (
    ClientCredentials,
    MalformedTokenResponse,
    TokenEndpointError,
    parse_token_response,
    prepare_client_credentials_request,
    prepare_refresh_request,
)

CLIENT = ClientCredentials("my client", "s3cret:+/")


@pytest.mark.parametrize("scope", ["read write", "read,write", "https://x.test/a offline_access"])
def test_authorization_url_keeps_scope_and_extra_params(scope: str) -> None:
    verifier = new_code_verifier()
    url = build_authorization_url(
        "https://idp.test/authorize?prompt=consent&access_type=offline",
        client_id="cid",
        redirect_uri="http://127.0.0.1:8080/oauth/callback",
        scope=scope,
        state="st",
        code_verifier=verifier,
    )
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "idp.test", "/authorize")
    query = dict(parse_qsl(parts.query))
    assert query["scope"] == scope
    assert query["prompt"] == "consent" and query["access_type"] == "offline"
    assert query["response_type"] == "code"
    assert query["client_id"] == "cid"
    assert query["redirect_uri"] == "http://127.0.0.1:8080/oauth/callback"
    assert query["state"] == "st"
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    assert query["code_challenge"] == expected.decode()
    assert query["code_challenge_method"] == "S256"


def test_authorization_url_without_pkce() -> None:
    url = build_authorization_url(
        "https://idp.test/a",
        client_id="c",
        redirect_uri="http://r/cb",
        scope=None,
        state="s",
        code_verifier=None,
    )
    query = parse_qs(urlsplit(url).query)
    assert "code_challenge" not in query and "scope" not in query


def test_verifier_is_rfc7636_shaped() -> None:
    verifier = new_code_verifier()
    assert 43 <= len(verifier) <= 128
    assert set(verifier) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
    )


def test_code_exchange_basic_auth() -> None:
    request = prepare_authorization_code_request(
        "https://idp.test/token",
        CLIENT,
        code="abc",
        redirect_uri="http://r/cb",
        code_verifier="v" * 43,
        auth_method="client_secret_basic",
    )
    body = dict(parse_qsl(request.body))
    assert body == {
        "grant_type": "authorization_code",
        "code": "abc",
        "redirect_uri": "http://r/cb",
        "code_verifier": "v" * 43,
    }
    assert request.headers["Authorization"].startswith("Basic ")
    assert "client_secret" not in body


def test_client_credentials_post_puts_credentials_in_body() -> None:
    request = prepare_client_credentials_request(
        "https://idp.test/token", CLIENT, scope="a,b", auth_method="client_secret_post"
    )
    body = dict(parse_qsl(request.body))
    assert body == {
        "grant_type": "client_credentials",
        "scope": "a,b",
        "client_id": "my client",
        "client_secret": "s3cret:+/",
    }
    assert "Authorization" not in request.headers


def test_refresh_request() -> None:
    request = prepare_refresh_request(
        "https://idp.test/token", CLIENT, refresh_token="r1", auth_method="client_secret_post"
    )
    body = dict(parse_qsl(request.body))
    assert body["grant_type"] == "refresh_token" and body["refresh_token"] == "r1"


def test_parse_token_response() -> None:
    token = parse_token_response(
        200,
        "application/json",
        b'{"access_token":"a","token_type":"bearer","expires_in":60,"refresh_token":"r","scope":"x"}',
        now=1000.0,
    )
    assert (token.access_token, token.expires_at, token.refresh_token, token.scope) == (
        "a",
        1060.0,
        "r",
        "x",
    )
    form = parse_token_response(
        200, "application/x-www-form-urlencoded", b"access_token=f&expires_in=5"
    )
    assert form.access_token == "f"


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, b'{"error":"invalid_grant","error_description":"revoked"}', "invalid_grant"),
        (401, b'{"error":"invalid_client"}', "invalid_client"),
        (400, b"", "http_400"),
    ],
)
def test_parse_token_errors(status: int, body: bytes, error: str) -> None:
    with pytest.raises(TokenEndpointError) as info:
        parse_token_response(status, "application/json", body)
    assert info.value.error == error


@pytest.mark.parametrize(
    "body",
    [b"<html>", b"[]", b'{"token_type":"bearer"}', b'{"access_token":"a","expires_in":"soon"}'],
)
def test_malformed_token_responses(body: bytes) -> None:
    with pytest.raises(MalformedTokenResponse):
        parse_token_response(200, "application/json", body)


def test_a_nested_token_is_read_where_token_response_path_says() -> None:
    body = (
        b'{"ok":true,"access_token":"xoxb-bot","authed_user":'
        b'{"id":"U1","access_token":"xoxp-user","token_type":"user","scope":"users:read"}}'
    )
    token = parse_token_response(200, "application/json", body, token_path="authed_user")
    assert (token.access_token, token.scope, token.expires_at) == ("xoxp-user", "users:read", None)
    top = parse_token_response(200, "application/json", body)
    assert top.access_token == "xoxb-bot"  # without the option: the top-level token
    deeper = parse_token_response(
        200, "application/json", b'{"a":{"b":{"access_token":"t"}}}', token_path="a.b"
    )
    assert deeper.access_token == "t"


@pytest.mark.parametrize(
    "body", [b'{"ok":true,"access_token":"bot"}', b'{"authed_user":"xoxp"}', b'{"authed_user":{}}']
)
def test_a_missing_nested_token_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedTokenResponse):
        parse_token_response(200, "application/json", body, token_path="authed_user")


def test_errors_are_read_at_the_top_even_with_a_token_path() -> None:
    with pytest.raises(TokenEndpointError) as info:
        parse_token_response(
            200,
            "application/json",
            b'{"ok":false,"error":"invalid_code"}',
            token_path="authed_user",
        )
    assert info.value.error == "invalid_code"


def test_a_token_without_expires_in_never_expires() -> None:
    token = parse_token_response(200, "application/json", b'{"access_token":"gho_x"}')
    assert token.expires_at is None and token.refresh_token is None


def test_a_form_encoded_token_answer_is_read() -> None:
    # GitHub answers so when a client does not ask for JSON
    token = parse_token_response(
        200,
        "application/x-www-form-urlencoded; charset=utf-8",
        b"access_token=gho_16C7&scope=repo%2Cgist&token_type=bearer",
    )
    assert (token.access_token, token.scope, token.token_type) == (
        "gho_16C7",
        "repo,gist",
        "bearer",
    )
