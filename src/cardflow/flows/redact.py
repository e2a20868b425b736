"""Redaction of saved card inputs and outputs: secrets and sensitive fields never stored."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

REDACTED = "[redacted]"
SENSITIVE_KEY = re.compile(
    r"token|secret|passw(or)?d|passwd|api[-_]?key|authorization|cookie|credential", re.I
)
SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


class Redactor:
    """Replaces sensitive fields by name, and known secret values wherever they appear."""

    def __init__(self, secrets: Collection[str] = (), headers: Collection[str] = ()) -> None:
        # Longest first, so a value containing a shorter secret is replaced whole.
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
        self.headers = SENSITIVE_HEADERS | {h.lower() for h in headers}

    def with_values(self, secrets: Collection[str], headers: Collection[str] = ()) -> Redactor:
        return Redactor([*self.secrets, *secrets], [*self.headers, *headers])

    def learn(self, value: Any) -> Redactor:
        """A redactor that also hides every text found under a sensitive key in ``value``
        (so a password in a JSON body is also hidden in the body's raw text)."""
        found: list[str] = []

        def walk(item: Any, sensitive: bool) -> None:
            if isinstance(item, dict):
                for key, child in item.items():
                    walk(child, sensitive or self._sensitive(key))
            elif isinstance(item, list):
                for child in item:
                    walk(child, sensitive)
            elif sensitive and isinstance(item, str | int | float) and not isinstance(item, bool):
                found.append(str(item))

        walk(value, False)
        return self.with_values(found) if found else self

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                key: REDACTED if self._sensitive(key) else self(item) for key, item in value.items()
            }
        if isinstance(value, list):
            # [name, value] pairs, as header lists often are
            if len(value) == 2 and isinstance(value[0], str) and self._sensitive(value[0]):
                return [value[0], REDACTED]
            return [self(item) for item in value]
        if isinstance(value, str):
            for secret in self.secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        return value

    def _sensitive(self, key: object) -> bool:
        return isinstance(key, str) and (
            key.lower() in self.headers or SENSITIVE_KEY.search(key) is not None
        )
