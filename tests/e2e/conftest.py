"""Browser tests: Debian's chromium driven by Playwright against cardflow's web app.

Each test gets its own server (SQLite in a fresh temp home) and its first login link, which
it opens like a user would: ``web`` serves the app with uvicorn in this process,
``web_process`` runs a real `cardflow serve` process for the tests about the process.
Chromium is the system's (/usr/bin/chromium, or CARDFLOW_CHROMIUM); Playwright's own
browser download is never used.
Without chromium the tests skip, unless CARDFLOW_REQUIRE_BROWSER=1 (CI) makes that a failure.
Screenshots go to CARDFLOW_SCREENSHOTS (``make screenshots`` points it at docs/screenshots).
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

import cardflow
from tests.conftest import MASTER_KEY, free_port, serving

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LINK = re.compile(r"(http://\S+/login\?token=\S+)")


def chromium_path() -> str | None:
    found = os.environ.get("CARDFLOW_CHROMIUM") or shutil.which("chromium")
    return found if found and Path(found).exists() else None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module scope: sync Playwright keeps an event loop running in this thread while it is
    # open, which asyncio tests collected after these must not find.
    path = chromium_path()
    if path is None:
        if os.environ.get("CARDFLOW_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed (apt-get install -y chromium)")
        pytest.skip("chromium is not installed; browser tests need Debian's chromium")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@dataclass
class WebServer:
    url: str
    home: Path
    login_link: str
    api_token: str
    # `cardflow serve` as its own process (web_process), or None: served in this process
    process: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)  # what the process printed, so far

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_token}"}

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=30)

    def new_login_link(self) -> str:
        result = subprocess.run(
            [sys.executable, "-c", "from cardflow.cli import main; main()", "login-link"],
            env=self.env(),
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout.strip()

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CARDFLOW_HOME": str(self.home),
            "CARDFLOW_MASTER_KEY": MASTER_KEY,
            "CARDFLOW_PORT": self.url.rsplit(":", 1)[1],  # the public URL follows it
        }


def _read_lines(stream: object, sink: queue.Queue[str], kept: list[str]) -> None:
    for line in stream:
        kept.append(line)  # all of it, for tests that read what the server logged
        sink.put(line)


@pytest.fixture(scope="session")
def web_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A home with its database made and an API token, copied for each test's server
    (making the database once per worker instead of once per test)."""
    home = tmp_path_factory.mktemp("web-template") / "home"
    with cardflow.open(home=home, master_key=MASTER_KEY) as cf:
        _, api_token = cf.api_tokens.create("e2e")
    return home, api_token


@pytest.fixture
def web(tmp_path: Path, web_home: tuple[Path, str]) -> Iterator[WebServer]:
    """cardflow's app served by uvicorn on a free loopback port, in this process (as the
    integration tests' ``server``): a fresh copy of the prepared home, its first login link.

    In this process rather than a `cardflow serve` child: starting Python and importing
    cardflow took 5-20 s per test on a loaded 2-core machine. ``web_process`` is the real
    `serve` process, for the tests about what it prints and where it listens."""
    home = tmp_path / "home"
    shutil.copytree(web_home[0], home)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with cardflow.open(home=home, master_key=MASTER_KEY, port=port) as cf:
        token, _ = cf.web_sessions.create_login_link()
        with serving(cf, port):
            yield WebServer(url, home, f"{url}/login?token={token}", web_home[1])


@pytest.fixture
def web_process(tmp_path: Path, web_home: tuple[Path, str]) -> Iterator[WebServer]:
    """`cardflow serve` as its own process on a free loopback port, first start (so it
    prints a login link)."""
    home = tmp_path / "home"
    shutil.copytree(web_home[0], home)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = WebServer(url, home, "", web_home[1])
    process = subprocess.Popen(
        [sys.executable, "-c", "from cardflow.cli import main; main()", "serve"],
        env=server.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server.process = process
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(
        target=_read_lines, args=(process.stdout, lines, server.output), daemon=True
    )
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not server.login_link:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail("cardflow serve printed no login link:\n" + "".join(server.output))
            found = LINK.search(line)
            if found:
                server.login_link = found.group(1)
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "".join(server.output)
            assert time.monotonic() < deadline, "cardflow serve did not start"
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1366, "height": 900})
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    """A tab that fails the test on any script error or CSP violation."""
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    tab.on(
        "console",
        lambda message: (
            problems.append(f"console {message.type}: {message.text}")
            # HTTP errors the test provokes are logged as "Failed to load resource"; anything
            # else (a script error, a CSP violation) fails the test
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )
    yield tab
    assert not problems, problems


def screenshot(page: Page, name: str) -> None:
    """Save a screenshot when CARDFLOW_SCREENSHOTS names a folder (docs/screenshots)."""
    folder = os.environ.get("CARDFLOW_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def login(page: Page, web: WebServer) -> None:
    page.goto(web.login_link)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{web.url}/flows")
    page.wait_for_selector("#app[data-ready='true']")
