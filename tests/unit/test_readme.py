"""The README documents every setting (each limit included) under its environment name."""

from __future__ import annotations

from pathlib import Path

from cardflow.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_documented_in_the_readme() -> None:
    text = README.read_text()
    missing = [
        f"CARDFLOW_{name.upper()}"
        for name in Settings.model_fields
        if f"`CARDFLOW_{name.upper()}`" not in text
    ]
    assert not missing, f"README.md does not document {', '.join(missing)}"
