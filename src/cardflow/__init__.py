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

from cardflow.app import Cardflow, open
from cardflow.cards.base import CardOptions, RetryPolicy
from cardflow.cards.runner import CardResult
from cardflow.connections.service import ConnectionView
from cardflow.errors import CardflowError
from cardflow.settings import Settings

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
