"""The provider preset catalogue: every entry checked, and filling one in."""

from __future__ import annotations

import pytest
from yarl import URL

from cardflow.connections.presets import (
    HOSTILE_VALUES,
    fill_preset,
    get_preset,
    preset_connection,
    presets,
    read_catalogue,
    search_presets,
)
from cardflow.credentials.registry import AUTH_TYPES
from cardflow.errors import InvalidInput, PresetNotFound
from cardflow.net.hosts import AllowedHosts
from cardflow.net.urls import resolve_url

ALL = sorted(presets())
# The services the issue names, each with at least one preset.
NAMED = (
    "github", "gitlab", "google", "microsoft-entra", "okta", "okta-custom", "auth0", "slack",
    "atlassian", "jira-cloud", "confluence-cloud", "salesforce", "hubspot", "zoom", "dropbox",
    "box", "asana", "notion", "linear", "zendesk", "servicenow", "docusign", "xero", "stripe",
    "twilio", "sendgrid", "pagerduty", "datadog", "airtable", "shopify", "spotify", "discord",
    "twitch",
)  # fmt: skip


def _examples(preset_id: str) -> dict[str, str]:
    return {p.name: p.example for p in get_preset(preset_id).placeholders}


def test_the_catalogue_has_at_least_30_presets_and_every_named_service() -> None:
    assert len(ALL) >= 30
    assert not [name for name in NAMED if name not in ALL]


@pytest.mark.parametrize("preset_id", ALL)
def test_every_preset_fills_into_a_valid_connection(preset_id: str) -> None:
    preset = get_preset(preset_id)
    filled = fill_preset(preset, _examples(preset_id))
    kind = AUTH_TYPES[filled.auth_type]
    # what the user adds: a client id where there is one, and every secret the preset's
    # choices (token_auth_method) require
    user = {
        name: "x"
        for name in kind.config.secret_fields
        if kind.config.field_required(name, filled.config)
    }
    if "client_id" in kind.config.model_fields:
        user["client_id"] = "id"
    if filled.auth_type in ("basic",):
        user["username"] = "someone"
    if filled.auth_type == "query":
        user.setdefault("param_name", "key")
    config = kind.config.model_validate({**filled.config, **user})
    assert not set(filled.config) & set(kind.config.secret_fields)
    # every URL the connection sends credentials or calls to is among its allowed hosts
    hosts = AllowedHosts(filled.allowed_hosts, preset_id)
    assert filled.allowed_hosts, "a preset always binds its connection to hosts"
    urls = [getattr(config, f) for f in kind.config.model_fields if f.endswith("_url")]
    for url in [*urls, filled.base_url]:
        if url:
            parsed = URL(url)
            assert parsed.scheme == "https", url
            assert hosts.allows(parsed), (url, filled.allowed_hosts)
    assert URL(preset.docs_url).scheme == "https"
    if filled.test_request is not None:
        assert filled.base_url, "a test_request is a path under the base URL"
        target = resolve_url(filled.test_request.path, filled.base_url)
        assert hosts.allows(target)
    if preset.scopes:
        assert config.scope == preset.scope_separator.join(preset.scopes)  # type: ignore[attr-defined]


@pytest.mark.parametrize("preset_id", [p for p in ALL if get_preset(p).placeholders])
@pytest.mark.parametrize("hostile", [v for v in HOSTILE_VALUES if v])
def test_no_placeholder_takes_a_host_path_or_port(preset_id: str, hostile: str) -> None:
    for placeholder in get_preset(preset_id).placeholders:
        params = {**_examples(preset_id), placeholder.name: hostile}
        with pytest.raises(InvalidInput) as info:
            fill_preset(get_preset(preset_id), params)
        assert info.value.field == f"preset_params.{placeholder.name}"


def test_missing_placeholders_are_all_named() -> None:
    with pytest.raises(InvalidInput) as info:
        fill_preset(get_preset("okta-custom"), {})
    # auth_server_id has a default; okta_domain has none
    assert info.value.field == "preset_params.okta_domain"
    assert "okta_domain (Okta domain, e.g. dev-123456.okta.com)" in info.value.message
    with pytest.raises(InvalidInput) as unknown:
        fill_preset(get_preset("okta"), {"okta_domain": "a.okta.com", "tenant": "x"})
    assert unknown.value.field == "preset_params.tenant"


def test_a_filled_okta_custom_preset() -> None:
    filled = fill_preset(get_preset("okta-custom"), {"okta_domain": "acme.okta.com"})
    assert filled.config["authorize_url"] == "https://acme.okta.com/oauth2/default/v1/authorize"
    assert filled.config["token_url"] == "https://acme.okta.com/oauth2/default/v1/token"
    assert filled.config["scope"] == "openid profile email offline_access"
    assert filled.allowed_hosts == ["acme.okta.com"]
    assert filled.base_url == "https://acme.okta.com"
    assert filled.test_request is not None
    assert filled.test_request.path == "/oauth2/default/v1/userinfo"


def test_quirks_are_options_of_the_entries() -> None:
    # a token nested in the token answer
    slack_user = fill_preset(get_preset("slack-user"), {})
    assert slack_user.config["token_response_path"] == "authed_user"
    assert URL(slack_user.config["authorize_url"]).query["user_scope"] == "users:read,search:read"
    # comma-separated scopes
    for preset_id in ("slack", "linear", "shopify"):
        preset = get_preset(preset_id)
        assert preset.scope_separator == ","
        filled = fill_preset(preset, _examples(preset_id))
        assert filled.config["scope"] == ",".join(preset.scopes)
    # what a provider needs to issue a refresh token
    google = URL(fill_preset(get_preset("google"), {}).config["authorize_url"])
    assert (google.query["access_type"], google.query["prompt"]) == ("offline", "consent")
    # tokens that never expire
    assert not get_preset("github").tokens_expire and get_preset("google").tokens_expire


def test_search_and_unknown_presets() -> None:
    assert [p.id for p in search_presets("okta")][:1] == ["okta-api-token"]
    assert {p.id for p in search_presets("OKTA custom")} == {"okta-custom", "okta-service"}
    assert search_presets("no such service at all") == []
    assert len(search_presets()) == len(ALL)
    with pytest.raises(InvalidInput):
        search_presets("x" * 201)
    with pytest.raises(PresetNotFound):
        get_preset("nope")


def test_preset_connection_merges_what_the_caller_gives() -> None:
    auth_type, config, hosts, base, probe = preset_connection(
        "github", None, config={"client_id": "abc", "scope": "repo"}
    )
    assert auth_type == "oauth" and config["client_id"] == "abc" and config["scope"] == "repo"
    assert hosts == ["github.com", "api.github.com"] and base == "https://api.github.com"
    # the preset's test request, as a path under the base URL
    assert probe == {"method": "GET", "url": "/user"}
    # one given wins; without a base URL there is nothing to put the preset's path under
    mine = {"method": "HEAD", "url": "https://api.github.com/rate_limit"}
    assert preset_connection("github", None, test_request=mine)[4] == mine
    assert preset_connection("github", None, base_url="")[4] is None
    with pytest.raises(InvalidInput) as info:
        preset_connection("github", None, auth_type="basic")
    assert info.value.field == "auth_type"


_ENTRY = """
presets:
  - id: demo
    title: Demo
    auth_type: oauth
    description: d
    docs_url: https://example.com/docs
    placeholders: [{name: sub, label: Sub, pattern: '%s', example: acme}]
    config:
      authorize_url: https://{sub}.example.com/a
      token_url: https://{sub}.example.com/t
"""


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (_ENTRY % "[a-z]+", None),
        (_ENTRY % ".+", "accepts"),  # a pattern that would take a host or a path
        (_ENTRY % "[a-z./]+", "accepts"),
        (_ENTRY % "[a-z]+" + "    base_url: https://{other}.example.com\n", "not declared"),
        (_ENTRY % "[a-z]+" + "    secret_help: x\n    extra: 1\n", "extra"),
        (_ENTRY.replace("description: d", "description: d\n    scopes: [a]") % "[a-z]+", None),
        (
            (_ENTRY % "[a-z]+").replace("token_url:", "client_secret: s\n      token_url:"),
            "never holds a secret",
        ),
        ((_ENTRY % "[a-z]+").replace("auth_type: oauth", "auth_type: digestish"), "auth_type"),
        ((_ENTRY % "[a-z]+").replace("{sub}.example.com/t", "x.example.com/t"), None),
        ((_ENTRY % "[a-z]+").replace("{sub}", "x"), "not used"),
    ],
)
def test_the_schema_refuses_a_bad_entry(text: str, problem: str | None) -> None:
    if problem is None:
        assert read_catalogue(text).presets[0].id == "demo"
        return
    with pytest.raises(ValueError, match=problem):
        read_catalogue(text)
