"""Where ``cardflow serve`` listens, recorded in CARDFLOW_HOME while it runs, so that
``cardflow login-link`` on the same machine prints a link to it (not to the default port)."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from cardflow.runs.processes import pid_alive
from cardflow.settings import Settings

_FILE = "serving.json"


def record(settings: Settings) -> Path:
    """Note this process's public URL (removed by :func:`forget` when it stops)."""
    path = settings.home / _FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"url": settings.public_url, "pid": os.getpid()})
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    return path


def forget(path: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()


def recorded_url(settings: Settings) -> str | None:
    """The URL of a ``cardflow serve`` running from this home, if one is."""
    try:
        noted = json.loads((settings.home / _FILE).read_text())
        url, pid = str(noted["url"]), int(noted["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return url if pid_alive(pid) else None
