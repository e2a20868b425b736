"""``cardflow card test`` and ``cardflow run``: a card run once, recorded and shown."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from tests.support.upstream import Upstream
from tests.unit.cli.helpers import SENTINEL, Invoke, assert_no_secret, create_basic


def test_card_test_against_a_closed_port(invoke: Invoke) -> None:
    create_basic(invoke)
    result = invoke(
        "card", "test", "api_connector.get", "--connection", "JIRA - Basic - bot",
        "--input", "url=http://127.0.0.1:9/", "--timeout", "5",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "connection_error" in result.stderr
    assert "run id: run_" in result.stdout
    assert_no_secret(result)

    as_json = invoke(
        "card", "test", "api_connector.get", "--input", "url=http://127.0.0.1:9/", "--json"
    )
    assert as_json.exit_code == 1
    data = json.loads(as_json.stdout)
    assert data["ok"] is False and data["error"]["type"] == "connection_error"

    runs = json.loads(invoke("run", "list", "--json").stdout)
    assert len(runs) == 2 and {r["status"] for r in runs} == {"failed"}
    # both are Test this card runs: --no-card-tests leaves them out
    assert json.loads(invoke("run", "list", "--no-card-tests", "--json").stdout) == []
    shown = invoke("run", "show", data["run_id"])
    assert shown.exit_code == 0 and "api_connector.get" in shown.stdout
    assert (
        json.loads(invoke("run", "show", data["run_id"], "--json").stdout)["id"] == (data["run_id"])
    )


def test_card_test_success_shows_status_headers_and_json_body(
    invoke: Invoke, upstream: Upstream
) -> None:
    create_basic(invoke)
    result = invoke(
        "card", "test", "api_connector.get", "--connection", "JIRA - Basic - bot",
        "--input", f"url={upstream.url}/json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.stdout and "HTTP 200" in result.stdout
    assert "content-type" in result.stdout.lower() and "application/json" in result.stdout
    assert '"hello": "world"' in result.stdout
    assert "run id: run_" in result.stdout
    sent = dict((k.lower(), v) for k, v in upstream.requests[-1]["headers"])
    expected = base64.b64encode(f"bot:{SENTINEL}".encode()).decode()
    assert sent["authorization"] == f"Basic {expected}"


def test_card_test_non_2xx_fails_and_continue_still_shows_outputs(
    invoke: Invoke, upstream: Upstream
) -> None:
    url = f"url={upstream.url}/status/404?body=missing-thing"
    failed = invoke("card", "test", "api_connector.get", "--input", url)
    assert failed.exit_code == 1
    assert "upstream_status" in failed.stderr and "missing-thing" in failed.stdout
    kept = invoke(
        "card", "test", "api_connector.get", "--input", url, "--on-error", "continue", "--json"
    )
    assert kept.exit_code == 1
    data = json.loads(kept.stdout)
    assert data["outputs"]["status_code"] == 404 and data["outputs"]["body"] == "missing-thing"


def test_card_test_bad_url_names_the_field(invoke: Invoke) -> None:
    result = invoke("card", "test", "api_connector.get", "--input", "url=ftp://example.com/x")
    assert result.exit_code == 2
    assert "inputs.url" in result.stderr
    as_json = invoke(
        "card", "test", "api_connector.get", "--inputs-json", '{"url": "nope"}', "--json"
    )
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout)["error"]["field"] == "inputs.url"


def test_card_test_input_values_are_json_when_they_parse(invoke: Invoke) -> None:
    # query must be an object: a JSON object passes validation, a plain string does not.
    ok = invoke(
        "card", "test", "api_connector.get", "--input", "url=http://127.0.0.1:9/",
        "--input", 'query={"a": 1}', "--json",
    )  # fmt: skip
    assert ok.exit_code == 1 and json.loads(ok.stdout)["error"]["type"] == "connection_error"
    bad = invoke(
        "card", "test", "api_connector.get", "--input", "url=http://127.0.0.1:9/",
        "--input", "query=a=1",
    )  # fmt: skip
    assert bad.exit_code == 2 and "inputs.query" in bad.stderr


def test_card_test_inputs_file_and_errors(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "inputs.json"
    path.write_text(json.dumps({"url": "gopher://x"}))
    result = invoke("card", "test", "api_connector.get", "--inputs-file", str(path))
    assert result.exit_code == 2 and "inputs.url" in result.stderr
    broken = invoke("card", "test", "api_connector.get", "--inputs-json", "{not json")
    assert broken.exit_code == 2 and "not valid JSON" in broken.stderr
    unknown = invoke("card", "test", "no.such.card", "--input", "url=http://127.0.0.1:9/")
    assert unknown.exit_code == 2 and "no.such.card" in unknown.stderr
    missing = invoke(
        "card", "test", "api_connector.get", "--connection", "ghost",
        "--input", "url=http://127.0.0.1:9/",
    )  # fmt: skip
    assert missing.exit_code == 2 and "ghost" in missing.stderr


def test_run_show_unknown(invoke: Invoke) -> None:
    result = invoke("run", "show", "run_nope")
    assert result.exit_code == 2 and "run_nope" in result.stderr
    assert invoke("run", "list").stdout.strip() == "No runs yet."
