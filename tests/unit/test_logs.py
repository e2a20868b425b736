from __future__ import annotations

import json
import logging

from cardflow.logs import JsonFormatter


def test_json_lines_carry_extra_fields() -> None:
    record = logging.makeLogRecord(
        {
            "name": "cardflow.access",
            "levelno": 20,
            "levelname": "INFO",
            "msg": "request",
            "path": "/api/v1/connections",
            "status": 200,
        }
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "request"
    assert line["path"] == "/api/v1/connections"
    assert line["status"] == 200
    assert line["level"] == "info"
