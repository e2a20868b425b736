"""The auth types a connection can have, by ``auth_type``."""

from __future__ import annotations

from typing import Any

from cardflow.credentials import (
    authorization_code,
    basic,
    client_credentials,
    custom_header,
    digest,
    none,
    query_param,
    static_bearer,
)
from cardflow.credentials.base import AuthType

# One line per auth type; each module's AUTH_TYPE says everything about it.
AUTH_TYPES: dict[str, AuthType] = {
    t.name: t
    for t in (
        basic.AUTH_TYPE,
        custom_header.AUTH_TYPE,
        static_bearer.AUTH_TYPE,
        query_param.AUTH_TYPE,
        digest.AUTH_TYPE,
        authorization_code.AUTH_TYPE,
        client_credentials.AUTH_TYPE,
        none.AUTH_TYPE,
    )
}


# Field labels where the field name, title-cased, reads wrong.
_LABELS = {
    "authorize_url": "Authorize URL",
    "token_url": "Token URL",
    "client_id": "Client ID",
    "pkce": "Use PKCE (S256)",
    "token_auth_method": "Token endpoint authentication",
    "param_name": "Parameter Name",
    "param_value": "Parameter Value",
}


def auth_type_info(auth_type: AuthType) -> dict[str, Any]:
    """An auth type and its config fields, as forms need them (JSON-ready)."""
    schema = auth_type.config.model_json_schema()
    # Required: fields without a default, and secrets that may not be empty (their default
    # is "" so that an update may leave them out and keep the stored one).
    required = set(schema.get("required", ())) | set(auth_type.config.required_secret_fields())
    fields = []
    for name, prop in schema.get("properties", {}).items():
        options = prop.get("enum")
        kind = "boolean" if prop.get("type") == "boolean" else "choice" if options else "text"
        fields.append(
            {
                "name": name,
                "title": _LABELS.get(name) or prop.get("title", name),
                "description": prop.get("description"),
                "kind": kind,
                "options": options,
                "required": name in required,
                "default": prop.get("default"),
                "secret": name in auth_type.config.secret_fields,
            }
        )
    return {
        "name": auth_type.name,
        "title": auth_type.title,
        "uses_tokens": auth_type.uses_tokens,
        "user_authorizes": auth_type.user_authorizes,
        "fields": fields,
    }
