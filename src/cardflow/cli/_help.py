"""How --help shows arguments and values: in the words man pages use (``RUN_ID``,
``TEXT``, ``INTEGER``), and flags with no value shown at all, rather than Typer 0.29's
``{run_id}``, ``<str>`` and ``<bool>`` (which read as if a flag took a value).

Typer builds its parameter classes itself, so the two display methods are wrapped once,
here; tests/integration/test_cli_help.py checks the result at 80 columns (a Typer upgrade
that renames them fails there, not in front of users).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from typer.core import TyperArgument, TyperOption

_NAMES = {
    "str": "TEXT",
    "int": "INTEGER",
    "int range": "INTEGER",
    "float": "NUMBER",
    "float range": "NUMBER",
    "Path": "PATH",
    "file": "PATH",
    "directory": "PATH",
}


def _plain(display: Callable[..., str | None]) -> Callable[..., str | None]:
    def shown(self: Any, ctx: Any) -> str | None:
        if getattr(self, "is_flag", False):
            return None  # --json, --no-worker: nothing to type after them
        text = display(self, ctx)
        if not text or not (text.startswith("<") and text.endswith(">")):
            return text  # a metavar of our own (KEY=VALUE), or nothing
        inner = text[1:-1]
        return _NAMES.get(inner, inner)

    return shown


def _usage_name(self: Any) -> str:
    name = str(self.metavar or self.name or "").upper()
    if self.nargs != 1:
        name += "..."
    return name if self.required else f"[{name}]"


def install() -> None:
    TyperOption.display_type_rich = _plain(TyperOption.display_type_rich)  # type: ignore[method-assign]
    TyperArgument.display_type_rich = _plain(TyperArgument.display_type_rich)  # type: ignore[method-assign]
    TyperArgument._usage_display_name = _usage_name  # type: ignore[method-assign]
