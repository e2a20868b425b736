"""/readyz and /metrics against a real server on both databases: what a scraper sees after
real runs, behind the API token unless public, and never a secret."""

from __future__ import annotations

import base64
import re

import httpx

from tests.conftest import RunningServer
from tests.support.oauth_server import OAuthServer
from tests.support.upstream import Upstream

PASSWORD = "metrics-SENTINEL-pw-5d2"


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series in Prometheus text (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_readyz_says_the_database_answers_at_its_schema(server: RunningServer) -> None:
    answer = httpx.get(f"{server.url}/readyz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ready"}


def test_metrics_count_runs_and_card_calls_without_secrets(
    server: RunningServer, upstream: Upstream
) -> None:
    cf = server.cf
    cf.connections.create("metered", "basic", {"username": "u", "password": PASSWORD})
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as api:
        flow = api.post(
            "/api/v1/flows",
            json={
                "name": "metered",
                "trigger": {"type": "api_endpoint", "alias": "metered", "security": "none"},
                "cards": [
                    {
                        "id": "ok",
                        "card": "api_connector.get",
                        "connection": "metered",
                        "inputs": {"url": f"{upstream.url}/echo"},
                    },
                    {
                        "id": "missing",
                        "card": "api_connector.get",
                        "connection": "metered",
                        "on_error": "continue",
                        "inputs": {"url": f"{upstream.url}/status/404"},
                    },
                    {"id": "out", "card": "flow.return", "inputs": {"ok": True}},
                ],
            },
        ).json()
        for _ in range(3):
            assert httpx.post(f"{server.url}/invoke/metered", timeout=30).status_code == 200
        refused = httpx.get(f"{server.url}/metrics")
        assert refused.status_code == 401
        scraped = api.get("/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    text = scraped.text
    flow_id = flow["id"]
    assert sample(text, "cardflow_runs_started_total", flow=flow_id, trigger="api_endpoint") == 3
    assert sample(text, "cardflow_runs_finished_total", flow=flow_id, status="succeeded") == 3
    assert sample(text, "cardflow_run_duration_seconds_count", flow=flow_id) == 3
    host = upstream.url.split("//")[1].split(":")[0]
    assert (
        sample(
            text,
            "cardflow_card_calls_total",
            card="api_connector.get",
            host=host,
            status_class="4xx",
        )
        >= 3
    )
    assert (
        sample(
            text,
            "cardflow_card_calls_total",
            card="api_connector.get",
            host=host,
            status_class="2xx",
        )
        >= 3
    )
    assert sample(text, "cardflow_live_processes") >= 1
    if not cf.db.is_sqlite:
        assert sample(text, "cardflow_live_workers") >= 1  # the server's own worker
        assert "cardflow_queue_jobs" in text and "cardflow_queue_oldest_job_age_seconds" in text
    for form in (PASSWORD, base64.b64encode(f"u:{PASSWORD}".encode()).decode()):
        assert form not in text


def test_metrics_count_token_requests_by_outcome(
    server: RunningServer, oauth_server: OAuthServer
) -> None:
    cf = server.cf
    oauth_server.add_client("metered-svc", PASSWORD, "client_secret_post", scope="read")
    good = cf.connections.create(
        "metered-cc",
        "client_credentials",
        {
            "token_url": oauth_server.token_url,
            "client_id": "metered-svc",
            "client_secret": PASSWORD,
        },
    )
    bad = cf.connections.create(
        "metered-cc-wrong",
        "client_credentials",
        {"token_url": oauth_server.token_url, "client_id": "metered-svc", "client_secret": "nope"},
    )
    url = f"{oauth_server.url}/api/me"
    assert cf.test_card("api_connector.get", connection="metered-cc", inputs={"url": url}).ok
    assert not cf.test_card(
        "api_connector.get", connection="metered-cc-wrong", inputs={"url": url}
    ).ok
    text = httpx.get(f"{server.url}/metrics", headers=server.headers).text
    assert sample(text, "cardflow_token_requests_total", connection=good.id, outcome="ok") == 1
    assert sample(text, "cardflow_token_requests_total", connection=bad.id, outcome="refused") == 1
    assert PASSWORD not in text


def test_metrics_may_be_public(server: RunningServer) -> None:
    server.cf.settings.metrics_public = True
    answer = httpx.get(f"{server.url}/metrics")
    assert answer.status_code == 200
    assert "cardflow_runs_started_total" in answer.text
