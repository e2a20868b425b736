"""What the CLI tests share besides fixtures: the sentinel secret and small assertions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from typer.testing import Result

import cardflow
from cardflow.app import Cardflow

SENTINEL = "s3cr3t-SENTINEL-7f3a9c"
Invoke = Callable[..., Result]


def opened(home: Path) -> Cardflow:
    return cardflow.open(home=home)


def assert_no_secret(result: Result, secret: str = SENTINEL) -> None:
    assert secret not in result.stdout
    assert secret not in result.stderr


def create_basic(invoke: Invoke, name: str = "JIRA - Basic - bot") -> Result:
    result = invoke(
        "connection", "create", name, "--type", "basic", "--set", "username=bot",
        "--secret-env", "password=PW", env={"PW": SENTINEL},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return result
