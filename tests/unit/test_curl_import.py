"""cURL import: a pasted curl command → the API Connector card and a proposed connection.

The real-world commands from public API docs live in tests/data/curl/public_docs.yaml, each
with the card and connection expected of it; the rest of this file pins one behaviour each.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from cardflow.cards.curl import MAX_COMMAND_CHARS, import_curl
from cardflow.cards.curl.export import card_to_curl
from cardflow.cards.registry import get_card
from cardflow.errors import InvalidInput

DATA = Path(__file__).parents[1] / "data" / "curl" / "public_docs.yaml"
PUBLIC_DOCS: list[dict[str, Any]] = yaml.safe_load(DATA.read_text("utf-8"))
SENTINEL = "s3cr3t-SENTINEL-7f3a9c"


def test_the_data_file_holds_at_least_25_commands_from_public_docs() -> None:
    assert len(PUBLIC_DOCS) >= 25
    assert all(entry["source"].startswith("https://") for entry in PUBLIC_DOCS)
    assert len({entry["name"] for entry in PUBLIC_DOCS}) == len(PUBLIC_DOCS)


@pytest.mark.parametrize("entry", PUBLIC_DOCS, ids=[e["name"] for e in PUBLIC_DOCS])
def test_a_command_from_public_docs_makes_the_expected_card_and_connection(
    entry: dict[str, Any],
) -> None:
    result = import_curl(entry["command"])
    assert result.card == entry["card"]
    proposal = result.connection.to_dict() if result.connection else None
    if entry["connection"] is None:
        assert proposal is None
    else:
        assert proposal is not None
        assert {k: proposal[k] for k in entry["connection"]} == entry["connection"]
    assert len(result.warnings) == len(entry["warnings_about"]), result.warnings
    for warning, about in zip(result.warnings, entry["warnings_about"], strict=True):
        assert about in warning


@pytest.mark.parametrize("entry", PUBLIC_DOCS, ids=[e["name"] for e in PUBLIC_DOCS])
def test_no_credential_of_a_command_is_left_in_its_card(entry: dict[str, Any]) -> None:
    result = import_curl(entry["command"])
    card = json.dumps(result.card)
    if result.connection is not None:
        for field in result.connection.secret_fields:
            value = result.connection.config[field]
            secret = value.partition(" ")[2] or value  # "Bearer xoxb-…": the token
            assert not secret or secret not in card


@pytest.mark.parametrize("entry", PUBLIC_DOCS, ids=[e["name"] for e in PUBLIC_DOCS])
def test_every_card_is_valid_unless_a_warning_says_what_to_fill_in(entry: dict[str, Any]) -> None:
    result = import_curl(entry["command"])
    card = result.card
    if any("needs attention" in w for w in result.warnings):
        return
    get_card(card["card"]).inputs.model_validate(card["inputs"])


def _card(command: str) -> tuple[str, dict[str, Any]]:
    result = import_curl(command)
    return result.card["card"], result.card["inputs"]


# -- method -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "card", "method"),
    [
        ("curl https://api.example.com/x", "api_connector.get", None),
        ("curl -d a=1 https://api.example.com/x", "api_connector.post", None),
        ("curl -XPATCH https://api.example.com/x -d '{}'", "api_connector.patch", None),
        ("curl --request=put https://api.example.com/x", "api_connector.put", None),
        ("curl -X DELETE https://api.example.com/x", "api_connector.delete", None),
        ("curl -I https://api.example.com/x", "api_connector.raw_request", "HEAD"),
        ("curl --head https://api.example.com/x", "api_connector.raw_request", "HEAD"),
        ("curl -X OPTIONS https://api.example.com/x", "api_connector.raw_request", "OPTIONS"),
        ("curl -X PROPFIND https://dav.example.com/x", "api_connector.raw_request", "PROPFIND"),
        ("curl -X GET -d '{}' https://es.example.com/_search", "api_connector.raw_request", "GET"),
        ("curl -G -d q=1 https://api.example.com/x", "api_connector.get", None),
        ("curl -T file.bin https://api.example.com/x", "api_connector.put", None),
    ],
)
def test_the_method_picks_the_card(command: str, card: str, method: str | None) -> None:
    got, inputs = _card(command)
    assert got == card
    assert inputs.get("method") == method


def test_get_with_data_moves_the_data_to_the_query() -> None:
    _, inputs = _card(
        "curl -G https://api.example.com/search?sort=new -d q=cats --data-urlencode 'tag=a b'"
    )
    assert inputs == {
        "url": "https://api.example.com/search",
        "query": {"sort": "new", "q": "cats", "tag": "a b"},
    }


def test_a_query_string_goes_to_the_query_input_with_repeated_names_as_lists() -> None:
    _, inputs = _card("curl 'https://api.example.com/x?a=1&b=two%20words&a=2&empty='")
    assert inputs == {
        "url": "https://api.example.com/x",
        "query": {"a": ["1", "2"], "b": "two words", "empty": ""},
    }


def test_a_query_that_is_not_all_name_value_pairs_stays_in_the_url() -> None:
    _, inputs = _card("curl 'https://es.example.com/_cat/indices?v&pretty'")
    assert inputs == {"url": "https://es.example.com/_cat/indices?v&pretty"}


def test_an_api_key_in_the_query_becomes_a_query_connection_and_leaves_the_card() -> None:
    result = import_curl(f"curl 'https://api.example.com/x?api_key={SENTINEL}&page=2'")
    assert result.card["inputs"]["query"] == {"page": "2"}
    assert SENTINEL not in json.dumps(result.card)
    assert result.connection is not None
    assert result.connection.to_dict() == {
        "name": "example.com - api_key",
        "auth_type": "query",
        "config": {"param_name": "api_key", "param_value": SENTINEL},
        "allowed_hosts": ["api.example.com"],
        "secret_fields": ["param_value"],
        "to_fill": [],
    }
    assert SENTINEL not in json.dumps(result.to_dict(show_secrets=False))
    shown = import_curl(
        "curl 'https://api.openweathermap.org/data/2.5/weather?q=Lyon&appid={API key}'"
    )
    assert shown.card["inputs"]["query"] == {"q": "Lyon"}
    assert shown.connection is not None and shown.connection.to_fill == ["param_value"]
    assert shown.connection.config == {"param_name": "appid", "param_value": ""}


def test_a_query_key_beside_another_credential_is_left_empty_with_a_warning() -> None:
    result = import_curl(f"curl -u bot:pw 'https://api.example.com/x?api_key={SENTINEL}&page=2'")
    assert result.card["inputs"]["query"] == {"api_key": "", "page": "2"}
    assert result.connection is not None and result.connection.auth_type == "basic"
    assert SENTINEL not in json.dumps(result.to_dict())
    assert any("'api_key' looks like a credential" in w for w in result.warnings)


def test_a_fragment_is_dropped_and_a_url_without_scheme_is_http_as_in_curl() -> None:
    result = import_curl("curl localhost:9200/_cluster/health#top")
    assert result.card["inputs"] == {"url": "http://localhost:9200/_cluster/health"}
    assert any("no scheme" in w for w in result.warnings)


# -- bodies -----------------------------------------------------------------------------


def test_json_flag_makes_a_json_body_and_accepts_json() -> None:
    card, inputs = _card(
        """curl --json '{"name": "Ada", "tags": [1, 2]}' https://api.example.com/u"""
    )
    assert card == "api_connector.post"
    assert inputs["body"] == {"name": "Ada", "tags": [1, 2]}
    assert inputs["headers"] == {"Accept": "application/json"}


def test_a_json_content_type_makes_the_body_a_json_value() -> None:
    _, inputs = _card(
        "curl -X PUT https://api.example.com/u/1 -H 'Content-Type: application/merge-patch+json' "
        """--data-raw '{"active": false}'"""
    )
    assert inputs["body"] == {"active": False}


def test_invalid_json_with_a_json_content_type_stays_text_with_a_warning() -> None:
    result = import_curl(
        """curl https://api.example.com/u -H 'Content-Type: application/json' -d '{"id": $ID}'"""
    )
    assert result.card["inputs"]["body"] == '{"id": $ID}'
    assert any("not valid JSON" in w for w in result.warnings)


def test_form_data_keeps_curls_implied_form_content_type_and_joins_parts_with_ampersands() -> None:
    _, inputs = _card("curl https://api.example.com/t -d a=1 --data b=2 --data-urlencode 'c=x&y'")
    assert inputs["body"] == "a=1&b=2&c=x%26y"
    assert inputs["headers"] == {"Content-Type": "application/x-www-form-urlencoded"}


def test_a_body_read_from_a_file_is_left_out_with_a_warning() -> None:
    result = import_curl("curl https://api.example.com/t -H 'Content-Type: text/xml' -d @body.xml")
    assert "body" not in result.card["inputs"]
    assert any("@body.xml reads the body from a file" in w for w in result.warnings)


def test_form_fields_go_form_encoded_and_files_are_left_out_with_warnings() -> None:
    result = import_curl(
        "curl https://api.example.com/upload -F title=Report "
        "-F 'file=@report.pdf;type=application/pdf'"
    )
    inputs = result.card["inputs"]
    assert inputs["body"] == "title=Report"
    assert inputs["headers"] == {"Content-Type": "application/x-www-form-urlencoded"}
    assert any("'file' were left out" in w for w in result.warnings)
    assert any("multipart/form-data" in w for w in result.warnings)


def test_a_raw_request_keeps_the_body_text_as_typed() -> None:
    _, inputs = _card(
        "curl -X REPORT https://dav.example.com/cal -H 'Content-Type: application/xml' "
        "--data-binary '<x:report/>'"
    )
    assert inputs == {
        "url": "https://dav.example.com/cal",
        "method": "REPORT",
        "headers": {"Content-Type": "application/xml"},
        "body": "<x:report/>",
    }


# -- headers and options ----------------------------------------------------------------


def test_header_forms_user_agent_referer_and_an_emptied_header() -> None:
    result = import_curl(
        "curl https://api.example.com -H 'X-Empty;' -H 'Accept:' -A 'tool/1.0' "
        "-e https://ref.example -H 'X-Trace: a' -H 'x-trace: b'"
    )
    assert result.card["inputs"]["headers"] == {
        "X-Empty": "",
        "User-Agent": "tool/1.0",
        "Referer": "https://ref.example",
        "X-Trace": "a, b",
    }
    assert any(
        "X-Trace is given twice" in w or "x-trace is given twice" in w for w in result.warnings
    )


def test_no_op_options_are_accepted_quietly_and_insecure_warns() -> None:
    result = import_curl(
        "curl -sSLvi --compressed -o out.json -w '%{http_code}' --fail --http1.1 "
        "--connect-timeout 5 https://api.example.com/x"
    )
    assert result.card == {
        "card": "api_connector.get",
        "inputs": {"url": "https://api.example.com/x"},
    }
    assert result.warnings == []
    insecure = import_curl("curl -k https://self-signed.example.com")
    assert any("verifies TLS" in w for w in insecure.warnings)


def test_max_time_becomes_the_cards_timeout() -> None:
    assert import_curl("curl -m 12.5 https://api.example.com").card["timeout"] == 12.5


def test_an_unknown_option_is_ignored_with_a_warning() -> None:
    result = import_curl("curl --frobnicate https://api.example.com")
    assert result.card["inputs"] == {"url": "https://api.example.com"}
    assert any("Unknown option --frobnicate" in w for w in result.warnings)


# -- the command line -------------------------------------------------------------------


def test_backslash_line_continuations() -> None:
    _, inputs = _card("curl \\\n  -X POST \\\r\n  https://api.example.com/x \\\n  -d a=1")
    assert inputs["url"] == "https://api.example.com/x" and inputs["body"] == "a=1"


def test_a_windows_cmd_paste_with_carets() -> None:
    command = (
        'curl "https://api.example.com/items?x=1" ^\n'
        '  -H "Content-Type: application/json" ^\n'
        '  --data-raw "^{^\\^"name^\\^":^\\^"Ada^\\^"^}"'
    )
    card, inputs = _card(command)
    assert card == "api_connector.post"
    assert inputs["body"] == {"name": "Ada"}
    assert inputs["query"] == {"x": "1"}


def test_a_powershell_paste_with_backticks() -> None:
    _, inputs = _card("curl.exe -X DELETE `\n  https://api.example.com/x/1 `\n  -H 'X-Trace: 1'")
    assert inputs == {"url": "https://api.example.com/x/1", "headers": {"X-Trace": "1"}}


def test_ansi_c_quoted_strings() -> None:
    _, inputs = _card("curl https://api.example.com -H $'X-Note: it\\'s\\tok' -d $'line1\\nline2'")
    assert inputs["headers"]["X-Note"] == "it's\tok"
    assert inputs["body"] == "line1\nline2"


def test_a_prompt_comments_and_a_pipe_after_the_command() -> None:
    result = import_curl("# list them\n$ curl -s https://api.example.com/x | jq '.items[]'")
    assert result.card["inputs"] == {"url": "https://api.example.com/x"}
    assert any("'|'" in w for w in result.warnings)
    assert not any("items" in w for w in result.warnings)


# -- credentials ------------------------------------------------------------------------


def test_user_and_password_become_a_basic_connection_not_a_header() -> None:
    result = import_curl(f"curl -u 'bot@example.com:{SENTINEL}' https://acme.atlassian.net/rest")
    assert SENTINEL not in json.dumps(result.card)
    assert result.connection is not None
    assert result.connection.to_dict() == {
        "name": "acme.atlassian.net - Basic - bot@example.com",
        "auth_type": "basic",
        "config": {"username": "bot@example.com", "password": SENTINEL},
        "allowed_hosts": ["acme.atlassian.net"],
        "secret_fields": ["password"],
        "to_fill": [],
    }
    assert result.connection.masked()["config"] == {
        "username": "bot@example.com",
        "password": "***",
    }


def test_credentials_in_the_url_leave_it_for_the_connection() -> None:
    result = import_curl(f"curl 'https://bot:{SENTINEL}%21@api.example.com/v1/me?x=1'")
    assert result.card["inputs"] == {"url": "https://api.example.com/v1/me", "query": {"x": "1"}}
    assert result.connection is not None
    assert result.connection.config == {"username": "bot", "password": f"{SENTINEL}!"}
    assert SENTINEL not in json.dumps(result.card) + " ".join(result.warnings)


def test_a_user_without_password_asks_for_it() -> None:
    result = import_curl("curl -u bot https://api.example.com:8443/x")
    assert result.connection is not None
    assert result.connection.config == {"username": "bot", "password": ""}
    assert result.connection.to_fill == ["password"]
    assert result.connection.allowed_hosts == ["api.example.com:8443"]
    assert any("no password" in w for w in result.warnings)


def test_a_basic_authorization_header_becomes_a_basic_connection() -> None:
    encoded = base64.b64encode(f"svc:{SENTINEL}".encode()).decode()
    result = import_curl(f"curl -H 'Authorization: Basic {encoded}' https://api.example.com")
    assert result.connection is not None and result.connection.auth_type == "basic"
    assert result.connection.config == {"username": "svc", "password": SENTINEL}
    assert "headers" not in result.card["inputs"]


@pytest.mark.parametrize(
    "option", [f"--oauth2-bearer {SENTINEL}", f"-H 'Authorization: Bearer {SENTINEL}'"]
)
def test_a_bearer_token_becomes_a_bearer_connection(option: str) -> None:
    result = import_curl(f"curl {option} -H 'Accept: application/json' https://api.example.com/v1")
    assert result.card["inputs"]["headers"] == {"Accept": "application/json"}
    assert SENTINEL not in json.dumps(result.card)
    assert result.connection is not None
    assert result.connection.auth_type == "bearer"
    assert result.connection.config == {"token": SENTINEL}
    assert result.connection.masked()["config"]["token"] == "***"


@pytest.mark.parametrize(
    ("option", "header", "value"),
    [
        (f"-H 'X-API-Key: {SENTINEL}'", "X-API-Key", SENTINEL),
        (f"-H 'api_key: {SENTINEL}'", "api_key", SENTINEL),
        (f"-H 'X-Auth-Token: {SENTINEL}'", "X-Auth-Token", SENTINEL),
        (f"-H 'Private-Token: {SENTINEL}'", "Private-Token", SENTINEL),
        (f"-H 'X-Custom-Api-Key: {SENTINEL}'", "X-Custom-Api-Key", SENTINEL),
    ],
)
def test_a_token_or_api_key_header_becomes_a_custom_header_connection(
    option: str, header: str, value: str
) -> None:
    result = import_curl(f"curl {option} -H 'Accept: application/json' https://api.example.com/v1")
    assert result.card["inputs"]["headers"] == {"Accept": "application/json"}
    assert SENTINEL not in json.dumps(result.card)
    assert result.connection is not None
    assert result.connection.auth_type == "custom"
    assert result.connection.config == {"header_name": header, "header_value": value}
    assert result.connection.allowed_hosts == ["api.example.com"]
    assert result.connection.masked()["config"]["header_value"] == "***"


def test_an_authorization_header_wins_over_user_as_in_curl_and_the_other_is_left_out() -> None:
    result = import_curl(
        f"curl -u 'a:{SENTINEL}' -H 'X-Api-Key: {SENTINEL}' -H 'Authorization: Token abc' "
        "https://api.example.com"
    )
    assert result.connection is not None
    assert result.connection.config == {"header_name": "Authorization", "header_value": "Token abc"}
    assert SENTINEL not in json.dumps(result.to_dict())
    assert [w.split(" is a credential")[0] for w in result.warnings] == ["-u", "X-Api-Key"]


def test_digest_user_and_password_become_a_digest_connection() -> None:
    result = import_curl(f"curl --digest -u 'ops:{SENTINEL}' https://intranet.example.com/api")
    assert SENTINEL not in json.dumps(result.card) + " ".join(result.warnings)
    assert result.connection is not None
    assert result.connection.to_dict() == {
        "name": "intranet.example.com - Digest - ops",
        "auth_type": "digest",
        "config": {"username": "ops", "password": SENTINEL},
        "allowed_hosts": ["intranet.example.com"],
        "secret_fields": ["password"],
        "to_fill": [],
    }
    assert result.connection.masked()["config"] == {"username": "ops", "password": "***"}
    assert result.warnings == []


@pytest.mark.parametrize(
    ("command", "auth_type", "to_fill"),
    [
        ("curl -u ops:pw --digest https://h.example.com", "digest", []),  # after -u too
        ("curl --digest --basic -u ops:pw https://h.example.com", "basic", []),  # last wins
        ("curl --digest -u ops: https://h.example.com", "digest", ["password"]),  # never empty
        ("curl --digest -u ops https://h.example.com", "digest", ["password"]),
        ("curl --digest 'https://ops:pw@h.example.com/x'", "digest", []),
    ],
)
def test_digest_applies_to_the_user_however_it_is_given(
    command: str, auth_type: str, to_fill: list[str]
) -> None:
    result = import_curl(command)
    assert result.connection is not None
    assert (result.connection.auth_type, result.connection.to_fill) == (auth_type, to_fill)
    assert result.connection.config["username"] == "ops"


def test_ntlm_credentials_are_not_kept() -> None:
    result = import_curl(f"curl --ntlm -u 'u:{SENTINEL}' https://api.example.com")
    assert result.connection is None
    assert SENTINEL not in json.dumps(result.to_dict())
    assert any("--ntlm" in w for w in result.warnings)


# -- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("", "Paste a curl command"),
        ("   \n ", "Paste a curl command"),
        ("wget https://api.example.com", "not a curl command"),
        ("GET https://api.example.com", "not a curl command"),
        ("curl 'https://api.example.com", "a quote is not closed"),
        ("curl -H 'Accept: x' -X POST", "no URL"),
        ("curl -X 'NOT A METHOD' https://api.example.com", "not an HTTP method"),
        ("curl ftp://files.example.com/x", "Only http:// and https://"),
        ("curl https://api.example.com -H", "needs a value"),
        ("curl https://api.example.com -H 'no colon'", "Name: value"),
        ("curl --version", "no request to import"),
        ("curl " + "a" * MAX_COMMAND_CHARS, f"at most {MAX_COMMAND_CHARS:,}"),
    ],
)
def test_bad_input_is_a_clear_error_naming_the_command(command: str, says: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        import_curl(command)
    assert caught.value.field == "command"
    assert says in caught.value.message


def test_an_error_never_repeats_a_secret_from_the_command() -> None:
    for command in (
        f"curl -u 'a:{SENTINEL}' -X '{SENTINEL} X' https://api.example.com",
        f"curl -H 'Authorization: Bearer {SENTINEL}' -u a:{SENTINEL}",
        f"curl -H 'X-Key {SENTINEL}' https://api.example.com",
        f"curl https://api.example.com -H 'X: {SENTINEL}",
    ):
        with pytest.raises(InvalidInput) as caught:
            import_curl(command)
        assert SENTINEL not in caught.value.message


# -- Copy as cURL -----------------------------------------------------------------------


def _plain(card: dict[str, Any]) -> dict[str, Any]:
    """A card without what a JSON card sends anyway (Content-Type: application/json)."""
    inputs = dict(card["inputs"])
    headers = {
        k: v
        for k, v in inputs.pop("headers", {}).items()
        if not (k.lower() == "content-type" and v == "application/json")
    }
    return {"card": card["card"], "inputs": {**inputs, **({"headers": headers} if headers else {})}}


@pytest.mark.parametrize("entry", PUBLIC_DOCS, ids=[e["name"] for e in PUBLIC_DOCS])
def test_copy_as_curl_pasted_back_gives_the_same_card(entry: dict[str, Any]) -> None:
    card = import_curl(entry["command"]).card
    again = import_curl(card_to_curl(card["card"], card["inputs"])).card
    assert _plain(again) == _plain(card)


@pytest.mark.parametrize(
    ("auth_type", "config", "shown"),
    [
        ("basic", {"username": "bot", "password": {"set": True}}, "-u 'bot:<password>'"),
        (
            "digest",
            {"username": "bot", "password": {"set": True}},
            "--digest -u 'bot:<password>'",
        ),
        (
            "custom",
            {"header_name": "X-API-Key", "header_value": {"set": True}},
            "-H 'X-API-Key: <header_value>'",
        ),
        ("oauth", {"client_id": "app"}, "-H 'Authorization: Bearer <access_token>'"),
        ("client_credentials", {}, "-H 'Authorization: Bearer <access_token>'"),
        ("none", {}, None),
    ],
)
def test_copy_as_curl_puts_placeholders_for_the_connections_secrets(
    auth_type: str, config: dict[str, Any], shown: str | None
) -> None:
    command = card_to_curl(
        "api_connector.delete",
        {"url": "https://api.example.com/u/1", "query": {"hard": True}},
        auth_type=auth_type,
        config=config,
    )
    first = "curl -X DELETE 'https://api.example.com/u/1?hard=true'"
    assert command.splitlines()[0].rstrip(" \\") == first
    if shown is None:
        assert command == first
    else:
        assert command.splitlines()[1].strip() == shown
        result = import_curl(command)
        assert result.connection is not None and result.connection.to_fill


def test_copy_as_curl_puts_a_query_connections_key_in_the_url_as_a_placeholder() -> None:
    command = card_to_curl(
        "api_connector.get",
        {"url": "https://api.example.com/w", "query": {"appid": "typed", "q": "a b"}},
        auth_type="query",
        config={"param_name": "appid", "param_value": {"set": True}},
    )
    # the connection's key replaces the card's same-name parameter, as on the wire
    assert command == "curl 'https://api.example.com/w?q=a+b&appid=<param_value>'"
    result = import_curl(command)
    assert result.connection is not None
    assert result.connection.auth_type == "query"
    assert result.connection.to_fill == ["param_value"]


def test_copy_as_curl_is_only_for_request_cards() -> None:
    with pytest.raises(InvalidInput) as caught:
        card_to_curl("json.parse", {"text": "{}"})
    assert caught.value.field == "card"
