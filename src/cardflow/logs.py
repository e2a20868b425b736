"""Structured logs: one JSON object per line on stderr.

Never pass secrets to a logger; as a second line of defence every line but the access log's
(method, path without query, status) has the secrets this process has loaded redacted."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from cardflow.redaction import LOG_SECRETS

ACCESS_LOGGER = "cardflow.access"

_STANDARD = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        line = json.dumps(data, default=str)
        if record.name == ACCESS_LOGGER:
            return line
        return LOG_SECRETS.redact(line)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (it may be replaced, e.g. in tests)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(level: str = "INFO") -> None:
    """Send cardflow's and uvicorn's logs to stderr as JSON lines."""
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # cardflow's own middleware logs requests without query strings (they may hold tokens).
    logging.getLogger("uvicorn.access").disabled = True
    # procrastinate logs every job at INFO (the stalled-run sweep runs every few seconds);
    # cardflow logs the runs it executes itself.
    logging.getLogger("procrastinate").setLevel(max(root.level, logging.WARNING))
