"""cURL import: a pasted ``curl`` command → an API Connector card and, for the credentials
in it, a proposed connection (never the card). ``words`` splits the command line,
``options`` reads curl's options, ``card`` makes the card, ``credentials`` the proposal;
``export`` is the way back (Copy as cURL)."""

from __future__ import annotations

from cardflow.cards.curl.card import CurlImport, import_curl
from cardflow.cards.curl.credentials import API_KEY_HEADERS, ConnectionProposal
from cardflow.cards.curl.words import MAX_COMMAND_CHARS

__all__ = [
    "API_KEY_HEADERS",
    "MAX_COMMAND_CHARS",
    "ConnectionProposal",
    "CurlImport",
    "import_curl",
]
