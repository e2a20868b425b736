"""Single sign-on pieces without a provider: settings from the environment, the role
rule, and what is refused before (or instead of) trusting a provider's answer. The whole
flow runs against a real provider in tests/integration/test_sso.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import cardflow
from cardflow.access.roles import Role
from cardflow.access.sso import MAX_DOCUMENT_BYTES, SingleSignOn, SsoFailed
from cardflow.app import Cardflow
from cardflow.settings import Settings

DISCOVERY = "http://127.0.0.1:9/.well-known/openid-configuration"


@pytest.fixture
def cf(tmp_path: Path) -> Iterator[Cardflow]:
    with cardflow.open(home=tmp_path / "home") as instance:
        yield instance


def _sso(cf: Cardflow, handler: object, **settings: object) -> SingleSignOn:
    base = {
        "home": cf.settings.home,
        "oidc_discovery_url": DISCOVERY,
        "oidc_client_id": "cf",
        "oidc_client_secret": "s3cret-value",
    }
    return SingleSignOn(
        cf.db,
        Settings(**(base | settings)),  # type: ignore[arg-type]
        transport=httpx.MockTransport(handler),  # type: ignore[arg-type]
    )


def test_settings_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not Settings().oidc_enabled  # off unless configured
    monkeypatch.setenv("CARDFLOW_OIDC_DISCOVERY_URL", DISCOVERY)
    monkeypatch.setenv("CARDFLOW_OIDC_CLIENT_ID", "cf")
    assert not Settings().oidc_enabled  # the secret too
    monkeypatch.setenv("CARDFLOW_OIDC_CLIENT_SECRET", "x")
    monkeypatch.setenv("CARDFLOW_OIDC_ALLOWED_DOMAINS", " Example.com, @corp.example ")
    monkeypatch.setenv("CARDFLOW_OIDC_ROLE_MAP", json.dumps({"admins": "admin"}))
    monkeypatch.setenv("CARDFLOW_OIDC_DEFAULT_ROLE", "None")
    settings = Settings()
    assert settings.oidc_enabled
    assert settings.oidc_allowed_domains == ("example.com", "corp.example")
    assert settings.oidc_role_map == {"admins": "admin"}
    assert settings.oidc_default_role is None
    assert "x" not in repr(settings.oidc_client_secret)


def test_the_highest_mapped_role_wins_else_the_default(cf: Cardflow) -> None:
    sso = _sso(
        cf,
        lambda r: httpx.Response(500),
        oidc_role_claim="groups",
        oidc_role_map={"a": "admin", "b": "builder"},
    )
    assert sso.role_for({"groups": ["b", "a", "zz"]}) == Role.admin
    assert sso.role_for({"groups": "b"}) == Role.builder
    assert sso.role_for({"groups": ["zz"]}) == Role.viewer
    assert sso.role_for({}) == Role.viewer
    strict = _sso(
        cf,
        lambda r: httpx.Response(500),
        oidc_role_claim="groups",
        oidc_role_map={"a": "admin"},
        oidc_default_role="none",
    )
    assert strict.role_for({"groups": ["zz"]}) is None


async def test_an_oversized_answer_is_refused(cf: Cardflow) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"{" + b" " * MAX_DOCUMENT_BYTES + b"}")

    with pytest.raises(SsoFailed, match="larger than") as failed:
        await _sso(cf, handler).start()
    assert failed.value.status_code == 502


async def test_a_discovery_document_for_another_issuer_is_refused(cf: Cardflow) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        base = "http://127.0.0.1:9"
        return httpx.Response(
            200,
            json={
                "issuer": "http://127.0.0.1:10",
                "authorization_endpoint": base + "/a",
                "token_endpoint": base + "/t",
                "jwks_uri": base + "/k",
            },
        )

    with pytest.raises(SsoFailed, match="another issuer"):
        await _sso(cf, handler).start()


async def test_a_redirect_is_not_followed(cf: Cardflow) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"Location": "http://127.0.0.1:9/elsewhere"})

    with pytest.raises(SsoFailed, match="did not answer a JSON object"):
        await _sso(cf, handler).start()
    assert seen == [DISCOVERY]


async def test_plain_http_is_refused_except_to_loopback(cf: Cardflow) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(500)

    sso = _sso(
        cf, handler, oidc_discovery_url="http://idp.example/.well-known/openid-configuration"
    )
    with pytest.raises(SsoFailed, match="must be an https:// URL"):
        await sso.start()
    assert seen == []  # nothing was sent
