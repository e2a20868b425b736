"""Single sign-on in a real browser: "Log in with …" on cardflow's login page, the local
OpenID Connect provider's own sign-in and consent forms, back on /flows as that user (again
after the provider rotated its signing key); and refused sign-ins (an ID token for another
audience, expired, signed by a key the provider does not publish, a user of a domain not
allowed) each show their reason."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect

import cardflow
from tests.conftest import MASTER_KEY, free_port, serving
from tests.e2e.conftest import WebServer, screenshot
from tests.support.oauth_server import OAuthServer

CLIENT_ID = "cardflow-e2e"
CLIENT_SECRET = "e2e-sso-client-secret-4b1d"


@pytest.fixture
def sso_web(
    tmp_path: Path, web_home: tuple[Path, str], oauth_server: OAuthServer
) -> Iterator[WebServer]:
    """As the ``web`` fixture, with single sign-on set up against ``oauth_server``."""
    home = tmp_path / "home"
    shutil.copytree(web_home[0], home)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    oauth_server.add_client(
        CLIENT_ID,
        CLIENT_SECRET,
        scope="openid email profile groups",
        grant_types=("authorization_code",),
        redirect_uris=(f"{url}/sso/callback",),
    )
    oauth_server.add_user("carol", "pw-carol", email="carol@example.com", groups=("cf-builders",))
    with cardflow.open(
        home=home,
        master_key=MASTER_KEY,
        port=port,
        oidc_discovery_url=oauth_server.discovery_url,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        oidc_provider_name="Test IdP",
        oidc_allowed_domains="example.com",
        oidc_role_claim="groups",
        oidc_role_map={"cf-builders": "builder"},
        oidc_extra_scopes="groups",
    ) as cf:
        token, _ = cf.web_sessions.create_login_link()
        with serving(cf, port):
            yield WebServer(url, home, f"{url}/login?token={token}", web_home[1])


def _sign_in_at_provider(page: Page, user: str = "carol") -> None:
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(f"pw-{user}")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Allow").click()


def test_log_in_with_the_provider_lands_on_flows_as_that_user(
    sso_web: WebServer, page: Page, oauth_server: OAuthServer
) -> None:
    page.goto(f"{sso_web.url}/login")
    screenshot(page, "sso-login")
    page.get_by_role("link", name="Log in with Test IdP").click()
    _sign_in_at_provider(page)
    page.wait_for_url(f"{sso_web.url}/flows")
    page.wait_for_selector("#app[data-ready='true']")
    expect(page.locator(".whoami")).to_have_text("carol@example.com (builder)")

    # the provider rotates its signing key: the next sign-in still works (JWKS fetched again)
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{sso_web.url}/login*")
    fetched = oauth_server.jwks_requests
    oauth_server.rotate_signing_key()
    page.get_by_role("link", name="Log in with Test IdP").click()
    page.get_by_role("button", name="Allow").click()  # still signed in at the provider
    page.wait_for_url(f"{sso_web.url}/flows")
    expect(page.locator(".whoami")).to_have_text("carol@example.com (builder)")
    assert oauth_server.jwks_requests == fetched + 1


def test_a_refused_sign_in_shows_why(
    sso_web: WebServer, page: Page, context: BrowserContext, oauth_server: OAuthServer
) -> None:
    oauth_server.add_user("dave", "pw-dave", email="dave@elsewhere.org", groups=("cf-builders",))
    cases = [
        ("carol", {"id_token_audience": "another-app"}, "audience (aud) is not valid"),
        ("carol", {"id_token_lifetime": -120}, "expired"),
        ("carol", {"id_token_forged": True}, "signature is not valid"),
        ("dave", {}, "users of elsewhere.org may not log in"),
    ]
    for user, switches, reason in cases:
        context.clear_cookies()  # a new sign-in at the provider too
        for name, value in switches.items():
            setattr(oauth_server, name, value)
        page.goto(f"{sso_web.url}/login")
        page.get_by_role("link", name="Log in with Test IdP").click()
        _sign_in_at_provider(page, user)
        page.wait_for_url(f"{sso_web.url}/sso/callback*")
        expect(page.locator("#result")).to_have_text("Single sign-on failed")
        expect(page.locator("#message")).to_contain_text(reason)
        page.get_by_role("link", name="Back to log in").click()
        expect(page.get_by_role("link", name="Log in with Test IdP")).to_be_visible()
        assert page.request.get(f"{sso_web.url}/api/v1/flows").status == 401  # no session
        oauth_server.id_token_audience = None
        oauth_server.id_token_lifetime = 3600
        oauth_server.id_token_forged = False
