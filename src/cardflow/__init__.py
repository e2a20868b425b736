"""cardflow: call third-party HTTP APIs from automated flows with stored, encrypted credentials.

import cardflow

with cardflow.open() as cf:
    cf.connections.create("Example - Basic - bot", "basic", {"username": "bot", "password": "…"})
    result = cf.test_card(
        "api_connector.get",
        connection="Example - Basic - bot",
        inputs={"url": "https://api.example.com/me"},
    )
    print(result.outputs["status_code"])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cardflow.app import Cardflow, open
    from cardflow.cards.base import CardOptions, RetryPolicy
    from cardflow.cards.runner import CardResult
    from cardflow.connections.service import ConnectionView
    from cardflow.errors import CardflowError
    from cardflow.settings import Settings

# Loaded on first use, so that a process importing one part (a worker running flows)
# does not load the facade and everything it wires.
_EXPORTS = {
    "Cardflow": "cardflow.app",
    "open": "cardflow.app",
    "CardOptions": "cardflow.cards.base",
    "RetryPolicy": "cardflow.cards.base",
    "CardResult": "cardflow.cards.runner",
    "ConnectionView": "cardflow.connections.service",
    "CardflowError": "cardflow.errors",
    "Settings": "cardflow.settings",
}

__all__ = [
    "CardOptions",
    "CardResult",
    "Cardflow",
    "CardflowError",
    "ConnectionView",
    "RetryPolicy",
    "Settings",
    "open",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cardflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
