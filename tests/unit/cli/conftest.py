"""Fixtures for the ``cardflow`` CLI tests: a clean environment and a fresh CARDFLOW_HOME."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from cardflow import cli
from tests.unit.cli.helpers import Invoke


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CARDFLOW_") or name in ("FORCE_COLOR", "NO_COLOR"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """``cardflow serve`` (uvicorn stubbed) sets the root logger up as the server's: JSON
    lines at INFO to stderr. Undone after each test, or a later test in the same process
    (a CLI test reading its output as JSON) would find log lines in it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def invoke(home: Path) -> Invoke:
    runner = CliRunner()

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(
            cli.app, list(args), input=input, env={"CARDFLOW_HOME": str(home), **(env or {})}
        )

    return run
