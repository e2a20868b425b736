"""Credentials found in a curl command, offered as a new connection instead of kept in
the card.

What counts as a credential (documented in README "cURL import"):
``-u/--user`` (a ``basic`` connection; with ``--digest`` a ``digest`` one),
``--oauth2-bearer`` and ``Authorization: Bearer …`` (a ``bearer`` one), another
``Authorization`` header (``custom``: the header as typed; ``Basic …`` decodes to a
``basic`` one), and the API-key headers of :data:`API_KEY_HEADERS` (``custom``). A
connection holds one credential: any other one is left out of the card too, with a warning
naming the header.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from yarl import URL

# Headers that carry an API key or token (lower case). A header named "...api-key",
# "...api_key", "...-token" or "...access-token" counts too (see is_credential_header).
API_KEY_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "x-api-key",
        "api-key",
        "apikey",
        "api_key",
        "x-apikey",
        "x-auth-token",
        "x-auth-key",
        "x-access-token",
        "private-token",  # GitLab
        "x-shopify-access-token",
        "dd-api-key",  # Datadog
        "dd-application-key",
        "x-postmark-server-token",
        "x-postmark-account-token",
        "x-vault-token",
        "x-trackertoken",  # Pivotal Tracker
        "x-redmine-api-key",
        "ocp-apim-subscription-key",  # Azure API Management
        "x-rapidapi-key",
        "x-goog-api-key",
        "x-figma-token",
        "x-cisco-meraki-api-key",
        "x-zendesk-api-token",
        "x-api-token",
        "x-secret-key",
        "x-client-secret",
    }
)
_CREDENTIAL_NAME = re.compile(r"(?:^|[-_])(?:api[-_]?key|(?:access|auth|api|session)[-_]?token)$")
# How docs write "put yours here": $TOKEN, ${TOKEN}, <token>, {token}, [KEY], YOUR_API_KEY,
# API_TOKEN (all capitals with an underscore), xxxx, ***, ...
_PLACEHOLDER = re.compile(
    r"^(?:\$\{?[A-Za-z_][A-Za-z0-9_]*\}?|<[^<>]*>|\{\{?[^{}]*\}?\}|\[[^\[\]]*\]"
    r"|(?i:your)[-_ A-Z][A-Za-z0-9_ -]*|[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|(?i:x{4,})|\*{3,}|\.{3})$"
)


def is_credential_header(name: str) -> bool:
    lower = name.lower()
    return lower in API_KEY_HEADERS or bool(_CREDENTIAL_NAME.search(lower))


def is_placeholder(value: str) -> bool:
    """A value the docs left for the reader to fill in, not a credential itself."""
    return bool(_PLACEHOLDER.match(value.strip()))


@dataclass
class ConnectionProposal:
    """A new connection for the credentials of a pasted command (secrets included: only the
    caller who pasted them sees this)."""

    name: str
    auth_type: str
    config: dict[str, str]
    allowed_hosts: list[str]
    secret_fields: list[str]
    # Config fields the command left as placeholders ($TOKEN, <api-key>): to be filled in.
    to_fill: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "auth_type": self.auth_type,
            "config": dict(self.config),
            "allowed_hosts": list(self.allowed_hosts),
            "secret_fields": list(self.secret_fields),
            "to_fill": list(self.to_fill),
        }

    def masked(self) -> dict[str, Any]:
        """As the CLI shows it without --show-secrets: secrets as ***."""
        data = self.to_dict()
        data["config"] = {
            key: ("***" if key in self.secret_fields and value else value)
            for key, value in self.config.items()
        }
        return data


def allowed_hosts_for(url: str) -> list[str]:
    """The URL's host (with a port that is not the scheme's), or ``*.rest`` when its first
    label is a placeholder ({subdomain}.zendesk.com); [] when it has none usable."""
    try:
        parsed = URL(url)
    except ValueError:
        return []
    host = (parsed.raw_host or "").lower()
    if not host:
        return []
    _, dot, rest = host.partition(".")
    if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)*|\[[0-9a-f:.]+\]|[0-9a-f:]+", host):
        if dot and "." in rest and re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", rest):
            host = f"*.{rest}"
        else:
            return []
    elif ":" in host:
        host = f"[{host}]"
    port = parsed.explicit_port
    default = {"http": 80, "https": 443}.get(parsed.scheme)
    return [f"{host}:{port}" if port is not None and port != default else host]


def service_name(url: str) -> str:
    hosts = allowed_hosts_for(url)
    host = hosts[0] if hosts else "API"
    for prefix in ("*.", "api.", "www."):
        host = host.removeprefix(prefix)
    return host


def basic_from_header(value: str) -> tuple[str, str] | None:
    """``Basic base64(user:pass)`` → (user, pass); None when it does not decode."""
    scheme, _, encoded = value.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def basic_proposal(
    url: str,
    username: str,
    password: str | None,
    warnings: list[str],
    auth_type: str = "basic",
) -> ConnectionProposal:
    """password None: none given (curl would prompt); "": an empty one, the username being
    the API key (Stripe's ``-u sk_test_…:``). ``auth_type`` ``digest``: ``--digest -u``
    (a Digest password is never empty: one not given is to be filled in)."""
    digest = auth_type == "digest"
    key_as_user = password == "" and not digest
    prompted = password is None or (digest and password == "")
    password = password or ""
    to_fill = [f for f, v in (("username", username), ("password", password)) if is_placeholder(v)]
    config = {
        "username": "" if "username" in to_fill else username,
        "password": "" if "password" in to_fill else password,
    }
    # The account goes in the nickname, unless the username is itself the key (Stripe: -u sk_…:)
    account = "" if key_as_user or "username" in to_fill else f" - {username}"
    if to_fill:
        warnings.append(_fill_warning(to_fill))
    if prompted:
        to_fill.append("password")
    return ConnectionProposal(
        name=f"{service_name(url)} - {'Digest' if digest else 'Basic'}{account}",
        auth_type=auth_type,
        config=config,
        allowed_hosts=allowed_hosts_for(url),
        secret_fields=["username", "password"] if key_as_user else ["password"],
        to_fill=to_fill,
    )


def header_proposal(url: str, name: str, value: str, warnings: list[str]) -> ConnectionProposal:
    scheme, _, token = value.partition(" ")
    if name.lower() == "authorization" and scheme.lower() == "bearer" and token.strip():
        return bearer_proposal(url, token.strip(), warnings)
    with_scheme = bool(token) and name.lower() in ("authorization", "proxy-authorization")
    to_fill = ["header_value"] if is_placeholder(token if with_scheme else value) else []
    if to_fill:
        # Keep the scheme the docs show ("Bearer "), leave the secret part empty.
        value = f"{scheme} " if with_scheme else ""
        warnings.append(_fill_warning(to_fill))
    return ConnectionProposal(
        name=f"{service_name(url)} - {name}",
        auth_type="custom",
        config={"header_name": name, "header_value": value},
        allowed_hosts=allowed_hosts_for(url),
        secret_fields=["header_value"],
        to_fill=to_fill,
    )


def bearer_proposal(url: str, token: str, warnings: list[str]) -> ConnectionProposal:
    """``Authorization: Bearer …`` or ``--oauth2-bearer …``: a ``bearer`` connection."""
    to_fill = ["token"] if is_placeholder(token) else []
    if to_fill:
        warnings.append(_fill_warning(to_fill))
    return ConnectionProposal(
        name=f"{service_name(url)} - Bearer",
        auth_type="bearer",
        config={"token": "" if to_fill else token},
        allowed_hosts=allowed_hosts_for(url),
        secret_fields=["token"],
        to_fill=to_fill,
    )


def query_proposal(url: str, name: str, value: str, warnings: list[str]) -> ConnectionProposal:
    """An API key in the URL's query (``?api_key=…``): a ``query`` connection."""
    to_fill = ["param_value"] if is_placeholder(value) else []
    if to_fill:
        warnings.append(_fill_warning(to_fill))
    return ConnectionProposal(
        name=f"{service_name(url)} - {name}",
        auth_type="query",
        config={"param_name": name, "param_value": "" if to_fill else value},
        allowed_hosts=allowed_hosts_for(url),
        secret_fields=["param_value"],
        to_fill=to_fill,
    )


def _fill_warning(fields: list[str]) -> str:
    names = ", ".join(fields)
    return (
        f"The command shows a placeholder (e.g. $TOKEN or <api-key>) where the credential "
        f"goes: enter the real value for {names} in the new connection."
    )
