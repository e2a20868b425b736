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
from cardflow.credentials.base import CLIENT_TLS_FIELDS, AuthType, Condition

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
    "token_response_path": "Token response path",
    "param_name": "Parameter Name",
    "param_value": "Parameter Value",
    "private_key": "Private key (PEM)",
    "key_id": "Key ID (kid)",
    "revocation_url": "Revocation URL",
    "client_certificate": "Client certificate (PEM)",
    "client_key": "Client private key (PEM)",
    "ca_certificate": "Server CA certificates (PEM)",
}


def _condition(rule: Condition | None) -> dict[str, Any] | None:
    return {"field": rule[0], "values": sorted(rule[1])} if rule is not None else None


def auth_type_info(auth_type: AuthType) -> dict[str, Any]:
    """An auth type and its config fields, as forms need them (JSON-ready)."""
    schema = auth_type.config.model_json_schema()
    # Required: fields without a default, and secrets that may not be empty (their default
    # is "" so that an update may leave them out and keep the stored one). A secret needed
    # only with some choice (a client secret with client_secret_* methods, the client
    # certificate with tls_client_auth) is marked required as the defaults have it;
    # ``applies_when`` and ``required_when`` tell forms the rule.
    config = auth_type.config
    required = set(schema.get("required", ())) | {
        name for name in config.secret_fields if config.field_required(name, {})
    }
    fields = []
    properties = schema.get("properties", {})
    # the type's own fields first, then the mutual-TLS ones every type has
    names = [n for n in properties if n not in CLIENT_TLS_FIELDS]
    names += [n for n in CLIENT_TLS_FIELDS if n in properties]
    for name in names:
        prop = properties[name]
        options = prop.get("enum")
        kind = "boolean" if prop.get("type") == "boolean" else "choice" if options else "text"
        if name in config.pem_fields:
            kind = "pem"  # several lines of PEM text
        applies = config.applies_when.get(name)
        required_when = config.required_when.get(name)
        fields.append(
            {
                "name": name,
                "title": _LABELS.get(name) or prop.get("title", name),
                "description": prop.get("description"),
                "kind": kind,
                "options": options,
                "required": name in required,
                "default": prop.get("default"),
                "secret": name in config.secret_fields,
                "required_if_applies": name in config.required_secret_fields(),
                "applies_when": _condition(applies),
                "required_when": _condition(required_when),
                # fields shown together under one heading ("client_tls": mutual TLS)
                "group": "client_tls" if name in CLIENT_TLS_FIELDS else None,
            }
        )
    return {
        "name": auth_type.name,
        "title": auth_type.title,
        "uses_tokens": auth_type.uses_tokens,
        "user_authorizes": auth_type.user_authorizes,
        "fields": fields,
    }
