"""The CLI at 80 columns, as a terminal shows it: every command's --help reads cleanly, and
the lists show ids and statuses whole."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from typer.main import get_command
from typer.testing import CliRunner

import cardflow
from cardflow.cli import app

RUNNER = CliRunner()
NARROW = {"COLUMNS": "80", "NO_COLOR": "1"}


def _commands(command: click.Command, path: list[str]) -> list[list[str]]:
    found = [path]
    for name, sub in getattr(command, "commands", {}).items():
        found += _commands(sub, [*path, name])
    return found


COMMANDS = _commands(get_command(app), [])


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) or "cardflow" for p in COMMANDS])
def test_help_fits_80_columns_and_names_values_plainly(path: list[str]) -> None:
    result = RUNNER.invoke(app, [*path, "--help"], env=NARROW)
    assert result.exit_code == 0, result.output
    for line in result.output.splitlines():
        assert len(line) <= 80, line
        assert line.strip(" │") != "\\", "an example's line continuation wrapped onto a line"
        assert "<bool>" not in line and "<str>" not in line and "<int" not in line, line
        assert not re.search(r"\{[a-z_]+\}", line), line


def test_a_flag_shows_no_value_and_an_argument_reads_as_a_name() -> None:
    text = RUNNER.invoke(app, ["run", "show", "--help"], env=NARROW).output
    assert "Usage: cardflow run show [OPTIONS] RUN_ID" in text
    json_line = next(line for line in text.splitlines() if "--json" in line)
    assert re.search(r"--json\s+Print machine-readable", json_line), json_line
    limit = RUNNER.invoke(app, ["run", "list", "--help"], env=NARROW).output
    assert "INTEGER [1<=x<=1000]" in limit


def test_lists_show_ids_and_statuses_whole_at_80_columns(tmp_path: Path) -> None:
    home = tmp_path / "home"
    long_name = "A flow whose name is long enough to need wrapping in a narrow terminal"
    with cardflow.open(home=home) as cf:
        flow = cf.flows.create(
            {
                "name": long_name,
                "trigger": {"type": "manual"},
                "cards": [{"id": "c", "card": "object.construct", "inputs": {"a": 1}}],
            }
        )
        run = cf.run_flow(flow.id)
    env = {**NARROW, "CARDFLOW_HOME": str(home)}
    runs = RUNNER.invoke(app, ["run", "list"], env=env)
    assert runs.exit_code == 0, runs.output
    assert run.id in runs.output and "succeeded" in runs.output and "manual" in runs.output
    assert "…" not in runs.output
    assert all(len(line) <= 80 for line in runs.output.splitlines())
    flows = RUNNER.invoke(app, ["flow", "list"], env=env)
    assert flow.id in flows.output and "…" not in flows.output
    assert all(len(line) <= 80 for line in flows.output.splitlines())
    # the name wraps whole words instead
    assert "A flow whose name" in flows.output
