"""``cardflow card from-curl``: the card as a flow file lists it, the connection masked;
``cardflow card to-curl``: Copy as cURL, secrets as placeholders."""

from __future__ import annotations

import json

import yaml

from cardflow.flows.model import FlowDocument
from tests.unit.cli.helpers import SENTINEL, Invoke, assert_no_secret, create_basic

COMMAND = (
    f"curl -u 'bot@example.com:{SENTINEL}' -X POST https://acme.atlassian.net/rest/api/3/issue "
    """-H 'Content-Type: application/json' -d '{"fields": {"summary": "Hi"}}' -k"""
)


def test_from_curl_prints_the_card_as_yaml_and_the_connection_masked(invoke: Invoke) -> None:
    result = invoke("card", "from-curl", COMMAND)
    assert result.exit_code == 0, result.output
    assert_no_secret(result)
    steps = yaml.safe_load(result.stdout)  # the connection is in comments: still YAML
    assert steps == [
        {
            "id": "post",
            "card": "api_connector.post",
            "inputs": {
                "url": "https://acme.atlassian.net/rest/api/3/issue",
                "headers": {"Content-Type": "application/json"},
                "body": {"fields": {"summary": "Hi"}},
            },
        }
    ]
    # ... and goes into a flow file as it is
    FlowDocument.model_validate({"name": "Imported", "cards": steps})
    assert "#   cardflow connection create 'acme.atlassian.net - Basic - bot@example.com'" in (
        result.stdout
    )
    assert "--set username=bot@example.com --allowed-host acme.atlassian.net" in result.stdout
    assert "password: '***'" in result.stdout
    assert "warning: -k/--insecure" in result.stderr


def test_from_curl_reads_standard_input_and_shows_secrets_only_when_asked(invoke: Invoke) -> None:
    masked = invoke("card", "from-curl", "--json", input=COMMAND)
    assert masked.exit_code == 0, masked.output
    assert_no_secret(masked)
    data = json.loads(masked.stdout)
    assert data["card"]["card"] == "api_connector.post"
    assert data["connection"]["config"] == {"username": "bot@example.com", "password": "***"}
    assert any("insecure" in w for w in data["warnings"])

    shown = invoke("card", "from-curl", "-", "--json", "--show-secrets", input=COMMAND)
    assert json.loads(shown.stdout)["connection"]["config"]["password"] == SENTINEL


def test_from_curl_refuses_what_is_not_a_curl_command(invoke: Invoke) -> None:
    result = invoke("card", "from-curl", f"wget --password={SENTINEL} https://x.example")
    assert result.exit_code == 2
    assert "not a curl command" in result.stderr
    assert_no_secret(result)
    as_json = invoke("card", "from-curl", "--json", "curl -X POST")
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout)["error"]["field"] == "command"


def test_to_curl_prints_the_cards_request_with_placeholders_for_secrets(invoke: Invoke) -> None:
    create_basic(invoke)
    result = invoke(
        "card", "to-curl", "api_connector.post", "--connection", "JIRA - Basic - bot",
        "--input", "url=https://jira.example.com/rest/api/3/issue",
        "--input", 'body={"fields": {"summary": "Hi"}}',
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert_no_secret(result)
    assert result.stdout.splitlines() == [
        "curl -X POST https://jira.example.com/rest/api/3/issue \\",
        "  -u 'bot:<password>' \\",
        "  -H 'Content-Type: application/json' \\",
        """  --data-raw '{"fields": {"summary": "Hi"}}'""",
    ]
    no_auth = invoke("card", "to-curl", "api_connector.get", "--input", "url=https://x.example")
    assert no_auth.stdout.strip() == "curl https://x.example"
    wrong = invoke("card", "to-curl", "json.parse", "--input", "text={}")
    assert wrong.exit_code == 2 and "API Connector request cards" in wrong.stderr


def test_to_curl_puts_a_relative_url_under_the_connections_base_url(invoke: Invoke) -> None:
    created = invoke(
        "connection", "create", "GH", "--type", "bearer", "--secret-stdin", "token",
        "--allowed-host", "api.github.com", "--base-url", "https://api.github.com",
        input=SENTINEL + "\n",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    result = invoke(
        "card", "to-curl", "api_connector.get", "--connection", "GH", "--input", "url=/user"
    )
    assert result.exit_code == 0, result.output
    assert_no_secret(result)
    assert result.stdout.splitlines()[0] == "curl https://api.github.com/user \\"
