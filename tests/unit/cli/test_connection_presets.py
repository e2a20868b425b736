"""``cardflow connection presets`` and ``connection create --preset``; ``--base-url``."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.cli.helpers import SENTINEL, Invoke, assert_no_secret, opened


def test_presets_are_listed_and_searched(invoke: Invoke) -> None:
    every = invoke("connection", "presets", "--json")
    assert every.exit_code == 0, every.output
    ids = [preset["id"] for preset in json.loads(every.stdout)]
    assert len(ids) >= 30 and "github" in ids and "okta-custom" in ids
    okta = invoke("connection", "presets", "okta", "custom", "--json")
    assert okta.exit_code == 2  # one query argument; words go quoted
    okta = invoke("connection", "presets", "okta custom", "--json")
    assert {p["id"] for p in json.loads(okta.stdout)} == {"okta-custom", "okta-service"}
    table = invoke("connection", "presets", "stripe")
    assert "stripe" in table.stdout and "--preset ID" in table.stdout
    none = invoke("connection", "presets", "no such thing here")
    assert none.exit_code == 0 and "No preset matches" in none.stdout


def test_create_from_a_preset_with_a_placeholder(invoke: Invoke, home: Path) -> None:
    env = {"OKTA_SECRET": SENTINEL}
    missing = invoke(
        "connection", "create", "Okta", "--preset", "okta-custom", "--set", "client_id=0oa1",
        "--secret-env", "client_secret=OKTA_SECRET", env=env,
    )  # fmt: skip
    assert missing.exit_code == 2
    assert "--param okta_domain" in missing.stderr and "Okta domain" in missing.stderr
    result = invoke(
        "connection", "create", "Okta", "--preset", "okta-custom",
        "--param", "okta_domain=acme.okta.com", "--set", "client_id=0oa1",
        "--secret-env", "client_secret=OKTA_SECRET", "--json", env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert_no_secret(result, SENTINEL)
    view = json.loads(result.stdout)
    assert view["auth_type"] == "oauth" and view["status"] == "needs_authorization"
    assert view["config"]["token_url"] == "https://acme.okta.com/oauth2/default/v1/token"
    assert view["config"]["client_id"] == "0oa1"
    assert view["allowed_hosts"] == ["acme.okta.com"]
    assert view["base_url"] == "https://acme.okta.com"
    with opened(home) as cf:
        assert cf.connections.load("Okta").config.client_secret == SENTINEL  # type: ignore[attr-defined]


def test_preset_mistakes_are_named(invoke: Invoke) -> None:
    unknown = invoke("connection", "create", "x", "--preset", "nope")
    assert unknown.exit_code != 0 and "no preset 'nope'" in unknown.stderr
    hostile = invoke(
        "connection", "create", "x", "--preset", "okta", "--param", "okta_domain=evil.example/x"
    )
    assert hostile.exit_code == 2 and "--param okta_domain" in hostile.stderr
    other_type = invoke("connection", "create", "x", "--preset", "stripe", "--type", "basic")
    assert other_type.exit_code == 2 and "leave --type out" in other_type.stderr
    lonely = invoke("connection", "create", "x", "--type", "none", "--param", "a=b")
    assert lonely.exit_code == 2 and "--preset" in lonely.stderr
    neither = invoke("connection", "create", "x")
    assert neither.exit_code == 2 and "--type" in neither.stderr


def test_base_url_on_create_and_update(invoke: Invoke) -> None:
    created = invoke(
        "connection", "create", "API", "--type", "none", "--base-url", "https://api.example.com/v1/",
        "--json",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["base_url"] == "https://api.example.com/v1"
    shown = invoke("connection", "show", "API")
    assert "base URL" in shown.stdout and "https://api.example.com/v1" in shown.stdout
    bad = invoke("connection", "update", "API", "--base-url", "ftp://api.example.com")
    assert bad.exit_code == 2 and "base_url" in bad.stderr
    cleared = invoke("connection", "update", "API", "--base-url", "", "--json")
    assert cleared.exit_code == 0 and json.loads(cleared.stdout)["base_url"] is None
