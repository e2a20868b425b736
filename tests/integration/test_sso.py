"""Single sign-on against a real local OpenID Connect provider (Authlib's OpenIDCode on the
test authorization server): the browser's hops played by `tests.support.provider_login`."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

import cardflow
from cardflow.logs import JsonFormatter
from cardflow.settings import Settings
from cardflow.store.models import SsoLogin, User
from tests.conftest import RunningServer, serving
from tests.integration.test_secret_sentinels import (
    Place,
    Secret,
    database_places,
    find_leaks,
)
from tests.support.oauth_server import OAuthServer
from tests.support.provider_login import authorize_get_callback_url, authorize_in_browser

CLIENT_ID = "cardflow-sso"
CLIENT_SECRET = "sso-SENTINEL-client-secret-7f3a9c"
ROLE_MAP = {"cf-builders": "builder", "cf-admins": "admin"}


@pytest.fixture
def sso(oauth_server: OAuthServer, settings_kwargs: dict[str, object]) -> Iterator[RunningServer]:
    public_url = str(settings_kwargs["public_url"])
    oauth_server.add_client(
        CLIENT_ID,
        CLIENT_SECRET,
        "client_secret_basic",
        scope="openid email profile groups",
        grant_types=("authorization_code",),
        redirect_uris=(f"{public_url}/sso/callback",),
    )
    oauth_server.add_user("bob", "pw-bob", email="bob@example.com", groups=("cf-builders",))
    oauth_server.add_user("eve", "pw-eve", email="eve@elsewhere.test")
    oauth_server.add_user("una", "pw-una", email="una@example.com", email_verified=False)
    oauth_server.add_user("ned", "pw-ned", email="ned@example.com", email_verified=None)
    kwargs = settings_kwargs | {
        "oidc_discovery_url": oauth_server.discovery_url,
        "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": CLIENT_SECRET,
        "oidc_provider_name": "Test IdP",
        "oidc_allowed_domains": "example.com",
        "oidc_role_claim": "groups",
        "oidc_role_map": ROLE_MAP,
        "oidc_extra_scopes": "groups",
    }
    port = int(public_url.rsplit(":", 1)[1])
    with cardflow.open(**kwargs) as cf, serving(cf, port) as running:
        yield running


def _sign_in(server: RunningServer, client: httpx.Client, user: str) -> httpx.Response:
    return authorize_in_browser(
        client, f"{server.url}/sso/login", username=user, password=f"pw-{user}"
    )


def _user(server: RunningServer, email: str) -> User | None:
    with server.cf.db.session() as session:
        row = session.scalars(select(User).where(User.email == email)).first()
        if row is not None:
            session.expunge(row)
        return row


def _assert_failed(answer: httpx.Response, status: int, reason: str) -> None:
    assert answer.status_code == status, answer.text[:500]
    assert "Single sign-on failed: " in answer.text
    assert reason in answer.text
    assert not any("cardflow_session=" in c for c in answer.headers.get_list("set-cookie"))


def test_login_page_offers_sso(sso: RunningServer) -> None:
    with httpx.Client(base_url=sso.url) as client:
        page = client.get("/login")
        assert page.status_code == 200
        assert 'href="/sso/login"' in page.text and "Log in with Test IdP" in page.text


def test_without_settings_sso_is_off(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        assert "/sso/login" not in client.get("/login").text
        _assert_failed(client.get("/sso/login"), 404, "not set up")


def test_first_login_creates_the_user_with_the_mapped_role_and_a_session(
    sso: RunningServer, oauth_server: OAuthServer
) -> None:
    with httpx.Client() as client:
        landed = _sign_in(sso, client, "bob")
        assert landed.status_code == 200 and landed.url.path == "/flows"
        sent = oauth_server.last_authorize_params
        assert sent["code_challenge_method"] == "S256" and len(sent["code_challenge"]) == 43
        assert sent["state"] and sent["nonce"] and sent["client_id"] == CLIENT_ID
        assert sent["scope"].split() == ["openid", "email", "profile", "groups"]
        assert sent["redirect_uri"] == f"{sso.url}/sso/callback"
        flows = client.get(f"{sso.url}/api/v1/flows")
        assert flows.status_code == 200
    bob = _user(sso, "bob@example.com")
    assert bob is not None and bob.role == "builder" and bob.oidc_subject == "sub-bob"
    assert bob.name == "bob@example.com"
    [login] = [e for e in sso.cf.audit.list() if e.action == "web.login"]  # in the audit log
    assert login.details == {"via": "single sign-on"}
    assert (login.actor.kind, login.actor.user_id) == ("web_session", bob.id)
    with sso.cf.db.session() as session:  # the sign-in's state was used up
        assert session.scalars(select(SsoLogin)).first() is None

    # the role follows the claim on each login; the same user, not a new one
    oauth_server.add_user("bob", "pw-bob", email="bob@example.com", groups=("cf-admins", "x"))
    with httpx.Client() as client:
        assert _sign_in(sso, client, "bob").url.path == "/flows"
        assert client.get(f"{sso.url}/api/v1/users").status_code == 403  # admin, not owner
    again = _user(sso, "bob@example.com")
    assert again is not None and again.id == bob.id and again.role == "admin"
    # no mapped group: the default role (viewer)
    oauth_server.add_user("bob", "pw-bob", email="bob@example.com", groups=())
    with httpx.Client() as client:
        assert _sign_in(sso, client, "bob").url.path == "/flows"
    viewer = _user(sso, "bob@example.com")
    assert viewer is not None and viewer.role == "viewer"


def test_an_invited_user_is_linked_by_email_and_an_owner_stays_owner(
    sso: RunningServer, oauth_server: OAuthServer
) -> None:
    owner = sso.cf.users.owner()
    with sso.cf.db.session() as session:
        row = session.get(User, owner.id)
        assert row is not None
        row.email = "Bob@Example.com"
    with httpx.Client() as client:
        assert _sign_in(sso, client, "bob").url.path == "/flows"
        assert client.get(f"{sso.url}/api/v1/users").status_code == 200  # still the owner
    with sso.cf.db.session() as session:
        row = session.get(User, owner.id)
        assert row is not None and row.oidc_subject == "sub-bob" and row.role == "owner"


def test_a_rotated_signing_key_is_fetched_again(
    sso: RunningServer, oauth_server: OAuthServer
) -> None:
    with httpx.Client() as client:
        assert _sign_in(sso, client, "bob").url.path == "/flows"
    assert oauth_server.jwks_requests == 1
    with httpx.Client() as client:  # the cached keys serve the next login
        assert _sign_in(sso, client, "bob").url.path == "/flows"
    assert oauth_server.jwks_requests == 1
    oauth_server.rotate_signing_key()
    with httpx.Client() as client:
        landed = _sign_in(sso, client, "bob")
        assert landed.url.path == "/flows", landed.text[:300]
    assert oauth_server.jwks_requests == 2


def test_a_token_for_another_audience_is_refused(
    sso: RunningServer, oauth_server: OAuthServer
) -> None:
    oauth_server.id_token_audience = "another-app"
    with httpx.Client() as client:
        _assert_failed(_sign_in(sso, client, "bob"), 400, "audience (aud) is not valid")
        assert client.get(f"{sso.url}/flows").headers["location"] == "/login"
    assert _user(sso, "bob@example.com") is None
    [failed] = [e for e in sso.cf.audit.list() if e.action == "web.login_failed"]
    assert "audience (aud) is not valid" in failed.details["reason"]
    assert failed.details["reason"].startswith("single sign-on: ")


def test_an_expired_token_is_refused(sso: RunningServer, oauth_server: OAuthServer) -> None:
    oauth_server.id_token_lifetime = -600
    with httpx.Client() as client:
        _assert_failed(_sign_in(sso, client, "bob"), 400, "the ID token has expired")


def test_a_replayed_nonce_is_refused(sso: RunningServer, oauth_server: OAuthServer) -> None:
    with httpx.Client() as client:
        assert _sign_in(sso, client, "bob").url.path == "/flows"
    # the provider (or an attacker) hands over an ID token minted for the earlier sign-in
    oauth_server.id_token_nonce = oauth_server.last_authorize_params["nonce"]
    with httpx.Client() as client:
        _assert_failed(_sign_in(sso, client, "bob"), 400, "nonce is not valid")


def test_a_replayed_or_unknown_state_is_refused(sso: RunningServer) -> None:
    with httpx.Client() as client:
        callback = authorize_get_callback_url(
            client, f"{sso.url}/sso/login", username="bob", password="pw-bob"
        )
        state = httpx.URL(callback).params["state"]
        assert client.cookies.get("cardflow_sso", path="/sso") == state
        first = client.get(callback)
        assert first.status_code == 303 and first.headers["location"] == "/flows"
        assert "cardflow_sso" not in client.cookies  # used up
    # even with the state's cookie, the state works once
    with httpx.Client(cookies={"cardflow_sso": state}) as replay:
        _assert_failed(replay.get(callback), 400, "unknown or was used already")
    with httpx.Client(cookies={"cardflow_sso": "forged"}) as other:
        _assert_failed(
            other.get(f"{sso.url}/sso/callback", params={"state": "forged", "code": "x"}),
            400,
            "unknown or was used already",
        )
        _assert_failed(other.get(f"{sso.url}/sso/callback"), 400, "no valid state")


def test_a_callback_from_another_browser_is_refused(sso: RunningServer) -> None:
    """Login CSRF: someone's own sign-in, stopped before its callback and sent to a
    victim, does not log the victim's browser in as them."""
    with httpx.Client() as attacker:
        callback = authorize_get_callback_url(
            attacker, f"{sso.url}/sso/login", username="bob", password="pw-bob"
        )
    with httpx.Client() as victim:
        _assert_failed(victim.get(callback), 400, "not started in this browser")
        assert victim.get(f"{sso.url}/flows").headers["location"] == "/login"
    assert _user(sso, "bob@example.com") is None


def test_a_token_signed_by_another_key_is_refused(
    sso: RunningServer, oauth_server: OAuthServer
) -> None:
    oauth_server.id_token_forged = True
    with httpx.Client() as client:
        _assert_failed(_sign_in(sso, client, "bob"), 400, "signature is not valid")
    assert _user(sso, "bob@example.com") is None


def test_users_outside_the_allowed_domains_or_unverified_are_refused(
    sso: RunningServer,
) -> None:
    with httpx.Client() as client:
        _assert_failed(_sign_in(sso, client, "eve"), 403, "users of elsewhere.test may not")
    with httpx.Client() as client:
        _assert_failed(_sign_in(sso, client, "una"), 403, "has not verified")
    with httpx.Client() as client:  # a token that does not say: refused by default
        _assert_failed(_sign_in(sso, client, "ned"), 403, "has not verified")
    assert _user(sso, "eve@elsewhere.test") is None and _user(sso, "una@example.com") is None


def test_an_id_token_silent_on_email_verified_may_be_let_in(sso: RunningServer) -> None:
    """CARDFLOW_OIDC_REQUIRE_VERIFIED_EMAIL=false (providers that never send the claim):
    a token that does not say gets in; one that says false is still refused."""
    sso.cf.settings.oidc_require_verified_email = False
    with httpx.Client() as client:
        assert _sign_in(sso, client, "ned").url.path == "/flows"
    with httpx.Client() as client:
        _assert_failed(_sign_in(sso, client, "una"), 403, "has not verified")
    ned = _user(sso, "ned@example.com")
    assert ned is not None and ned.role == "viewer"
    assert _user(sso, "una@example.com") is None


def test_a_user_the_provider_refuses_gets_the_reason(sso: RunningServer) -> None:
    with httpx.Client() as client:
        answer = authorize_in_browser(
            client, f"{sso.url}/sso/login", username="bob", password="pw-bob", consent=False
        )
        _assert_failed(answer, 403, "the provider refused: access_denied")


def test_without_a_default_role_unmapped_users_are_refused(
    oauth_server: OAuthServer, settings_kwargs: dict[str, object]
) -> None:
    public_url = str(settings_kwargs["public_url"])
    oauth_server.add_client(
        CLIENT_ID,
        CLIENT_SECRET,
        scope="openid email profile groups",
        grant_types=("authorization_code",),
        redirect_uris=(f"{public_url}/sso/callback",),
    )
    oauth_server.add_user("zed", "pw-zed", email="zed@example.com", groups=("other",))
    kwargs = settings_kwargs | {
        "oidc_discovery_url": oauth_server.discovery_url,
        "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": CLIENT_SECRET,
        "oidc_role_claim": "groups",
        "oidc_role_map": ROLE_MAP,
        "oidc_default_role": "none",
        "oidc_extra_scopes": "groups",
    }
    port = int(public_url.rsplit(":", 1)[1])
    with cardflow.open(**kwargs) as cf, serving(cf, port) as srv, httpx.Client() as client:
        _assert_failed(_sign_in(srv, client, "zed"), 403, "has no role in this cardflow")


def test_settings_refuse_owner_in_the_role_map() -> None:
    with pytest.raises(ValueError, match="owners are made in cardflow"):
        Settings(oidc_role_map={"g": "owner"})
    with pytest.raises(ValueError, match="viewer, builder, admin or none"):
        Settings(oidc_default_role="owner")


def test_the_client_secret_never_leaks(
    sso: RunningServer, oauth_server: OAuthServer, captured_logs: pytest.LogCaptureFixture
) -> None:
    answers: list[httpx.Response] = []

    def keep(response: httpx.Response) -> None:
        response.read()
        answers.append(response)

    with httpx.Client(event_hooks={"response": [keep]}) as client:
        assert _sign_in(sso, client, "bob").url.path == "/flows"
        answers.append(client.get(f"{sso.url}/api/v1/users"))
    oauth_server.id_token_audience = "another-app"
    with httpx.Client(event_hooks={"response": [keep]}) as client:
        _assert_failed(_sign_in(sso, client, "bob"), 400, "audience")
    oauth_server.id_token_audience = None
    oauth_server.fail_next(1, 400, error="invalid_client")
    with httpx.Client(event_hooks={"response": [keep]}) as client:
        _assert_failed(_sign_in(sso, client, "bob"), 502, "token endpoint answered 400")
    # the secret really went to the provider: the sign-in worked with it
    assert oauth_server.code_exchanges == 3
    secret = Secret("the OIDC client secret", CLIENT_SECRET)
    ours = [r for r in captured_logs.records if r.name.startswith("cardflow")]
    assert any("single sign-on failed" in r.getMessage() for r in ours)
    places = [
        *(Place(f"answer {a.request.url}", a.text + json.dumps(dict(a.headers))) for a in answers),
        *database_places(sso.cf),
        Place("logs", "\n".join(JsonFormatter().format(r) for r in ours)),
    ]
    leaks = [leak for place in places for leak in find_leaks(place, [secret])]
    assert not leaks, "\n".join(leaks)
