"""`cardflow serve` as a real process: it serves, logs JSON lines, and never logs secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
from yarl import URL

import cardflow
from tests.conftest import free_port
from tests.support.upstream import Upstream

PASSWORD = "serve-SENTINEL-pw-31f"


def wait_until_serving(process: subprocess.Popen[str], base: str) -> None:
    """Until `cardflow serve` answers /healthz (its stderr if it stopped, if captured)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "cardflow serve did not start"
        time.sleep(0.1)


def test_serve_logs_requests_without_secrets(tmp_path: Path, upstream: Upstream) -> None:
    home = tmp_path / "home"
    with cardflow.open(home=home) as cf:
        _, api_token = cf.api_tokens.create("serve-test")
        cf.connections.create("b", "basic", {"username": "u", "password": PASSWORD})
    port = free_port()
    env = {**os.environ, "CARDFLOW_HOME": str(home), "CARDFLOW_PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-c", "from cardflow.cli import main; main()", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(process, base)
        headers = {"Authorization": f"Bearer {api_token}"}
        flow = httpx.post(
            f"{base}/api/v1/flows",
            headers=headers,
            json={
                "name": "logged",
                "trigger": {"type": "api_endpoint", "alias": "logged"},
                "cards": [
                    {
                        "id": "g",
                        "card": "api_connector.get",
                        "connection": "b",
                        "inputs": {"url": f"{upstream.url}/echo"},
                    },
                    {"id": "out", "card": "flow.return", "inputs": {"ok": True}},
                ],
            },
        ).json()
        client_token = flow["client_token"]
        answer = httpx.post(f"{base}/invoke/logged", params={"clientToken": client_token})
        assert answer.json() == {"ok": True}
        tested = httpx.post(
            f"{base}/api/v1/cards/api_connector.get/test",
            headers=headers,
            json={"connection": "b", "inputs": {"url": f"{upstream.url}/status/500"}},
        )
        assert tested.json()["ok"] is False
    finally:
        process.terminate()
        stdout, stderr = process.communicate(timeout=30)
    # uvicorn shuts down cleanly on SIGTERM, then re-raises the signal to exit by it
    assert process.returncode in (0, -15), stderr
    assert "Application shutdown complete" in stderr
    assert f"cardflow serving on http://127.0.0.1:{port}" in stdout
    records = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert any(r.get("path") == "/invoke/logged" and r.get("status") == 200 for r in records)
    everything = stdout + stderr
    for secret in (PASSWORD, client_token, api_token):
        assert secret not in everything


def test_serve_never_logs_a_query_key_in_any_form(tmp_path: Path, upstream: Upstream) -> None:
    """A query connection's key, called, failing and redirected, at DEBUG level: neither the
    access log nor any other line holds it, as typed or URL-encoded."""
    key = "serve-SENTINEL key&+/é"
    forms = (
        key,
        URL("http://h/").with_query(k=key).raw_query_string[2:],  # as it went in the URL
        quote(key, safe=""),
        quote_plus(key),
        json.dumps(key)[1:-1],
    )
    home = tmp_path / "home"
    with cardflow.open(home=home) as cf:
        _, api_token = cf.api_tokens.create("serve-test")
        cf.connections.create("q", "query", {"param_name": "api_key", "param_value": key})
    port = free_port()
    env = {
        **os.environ,
        "CARDFLOW_HOME": str(home),
        "CARDFLOW_PORT": str(port),
        "CARDFLOW_LOG_LEVEL": "DEBUG",
    }
    process = subprocess.Popen(
        [sys.executable, "-c", "from cardflow.cli import main; main()", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    elsewhere = quote(f"http://localhost:{upstream.port}/echo", safe="")
    try:
        wait_until_serving(process, base)
        headers = {"Authorization": f"Bearer {api_token}"}
        for path, ok in (
            ("/echo/served", True),
            ("/status/500", False),
            (f"/redirect?to={elsewhere}&echo=next", False),  # not followed: the key is in it
            ("/hang", False),  # the card's timeout
        ):
            tested = httpx.post(
                f"{base}/api/v1/cards/api_connector.get/test",
                headers=headers,
                json={
                    "connection": "q",
                    "inputs": {"url": f"{upstream.url}{path}"},
                    "timeout": 0.5,
                },
                timeout=30,
            )
            assert tested.json()["ok"] is ok, tested.text
        closed = httpx.post(
            f"{base}/api/v1/cards/api_connector.get/test",
            headers=headers,
            json={"connection": "q", "inputs": {"url": f"http://127.0.0.1:{free_port()}/x"}},
        )
        assert closed.json()["error"]["type"] == "connection_error", closed.text
    finally:
        process.terminate()
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode in (0, -15), stderr
    records = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert any(r.get("logger") == "cardflow.access" for r in records)
    sent = [r for r in upstream.requests if r["path"] == "/echo/served"]
    assert sent and sent[-1]["query"]["api_key"] == [key]  # the key did go out
    for form in forms:
        assert form not in stdout + stderr, form


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from cardflow.cli import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_login_link_points_where_serve_listens(tmp_path: Path) -> None:
    """`serve --port P` in one shell, `cardflow login-link` in another (no CARDFLOW_PORT
    there): the link opens on P, and works; with no server running the link says where it
    points and how to change it."""
    home = tmp_path / "home"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARDFLOW_")}
    env["CARDFLOW_HOME"] = str(home)
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from cardflow.cli import main; main()",
            "serve",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(process, base)
        made = _cli(["login-link"], env)
        assert made.returncode == 0, made.stderr
        link = made.stdout.strip()
        assert link.startswith(f"{base}/login?token="), link
        assert made.stderr == ""
        with httpx.Client() as browser:
            page = browser.get(link)
            assert page.status_code == 200
            logged_in = browser.post(f"{base}/login", data={"token": link.split("token=")[1]})
            assert logged_in.status_code in (200, 303), logged_in.text
        assert json.loads(_cli(["login-link", "--json"], env).stdout)["url"].startswith(base)
        # CARDFLOW_PUBLIC_URL, when set, is what the link uses
        proxied = _cli(["login-link"], {**env, "CARDFLOW_PUBLIC_URL": "https://cf.example.test"})
        assert proxied.stdout.startswith("https://cf.example.test/login?token=")
    finally:
        process.terminate()
        process.wait(timeout=30)
    stopped = _cli(["login-link"], env)
    assert stopped.returncode == 0
    assert stopped.stdout.startswith("http://127.0.0.1:8080/login?token=")
    assert "No cardflow serve is running" in stopped.stderr
    assert "CARDFLOW_PUBLIC_URL" in stopped.stderr
    assert not (home / "serving.json").exists()
