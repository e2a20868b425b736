"""/docs: Swagger UI for the OpenAPI document, served by cardflow itself (works offline).

The assets (Swagger UI 5, which reads OpenAPI 3.1) come from the pinned ``fastapi-offline``
package, made to serve FastAPI's docs without a CDN; only its files are used. The page has
no inline script (its start-up code is static/js/swagger-init.js), like every other page.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from cardflow.cards.registry import CARDS
from cardflow.credentials.registry import AUTH_TYPES
from cardflow.server.web import CONTENT_SECURITY_POLICY, SECURITY_HEADERS

ASSETS = "/docs-assets"
ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"

# Swagger UI sets style attributes as it renders: the one relaxation, for styles only.
DOCS_HEADERS = {
    **SECURITY_HEADERS,
    "Content-Security-Policy": CONTENT_SECURITY_POLICY.replace(
        "style-src 'self'", "style-src 'self' 'unsafe-inline'"
    ),
}

_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cardflow API · Swagger UI</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
</head><body><div id="swagger-ui" data-openapi-url="/openapi.json"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script src="/static/js/swagger-init.js"></script>
</body></html>
"""

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def swagger_ui() -> HTMLResponse:
    return HTMLResponse(_PAGE, headers=DOCS_HEADERS)


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(ASSETS, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            describe_configs_and_inputs(generate())  # FastAPI keeps what it generated
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


def _component(components: dict[str, Any], name: str, model: Any) -> dict[str, str]:
    """A model's schema as a named component (its nested models too); returns its $ref."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for nested, nested_schema in schema.pop("$defs", {}).items():
        components.setdefault(nested, nested_schema)
    components[name] = schema
    return {"$ref": f"#/components/schemas/{name}"}


def describe_configs_and_inputs(spec: dict[str, Any]) -> None:
    """Connection configs and card inputs are free-form objects to FastAPI (their shape
    depends on auth_type / card): give /docs each auth type's config (``Config.basic``…,
    secrets write-only) and each card's inputs (``Inputs.api_connector.get``…)."""
    components = spec["components"]["schemas"]
    configs = []
    for name, kind in AUTH_TYPES.items():
        ref = _component(components, f"Config.{name}", kind.config)
        schema = components[f"Config.{name}"]
        schema["title"] = f"{kind.title} ({name})"
        for secret in kind.config.secret_fields:
            field = schema.get("properties", {}).get(secret)
            if field is not None:
                field.update({"writeOnly": True, "format": "password"})
        configs.append(ref)
    for body in ("ConnectionCreate", "ConnectionUpdate"):
        field = components.get(body, {}).get("properties", {}).get("config")
        if field is None:
            continue
        nullable = body == "ConnectionUpdate"
        choices = [*configs, {"type": "null"}] if nullable else configs
        kept = {key: field[key] for key in ("default", "examples") if key in field}
        field.clear()
        field.update(
            kept,
            anyOf=copy.deepcopy(choices),
            description="The config of the connection's auth_type: one of the Config.* "
            'schemas. Secret fields are write-only: answers show them as {"set": true}.',
        )
    inputs = []
    for card_id, card in CARDS.items():
        inputs.append(_component(components, f"Inputs.{card_id}", card.inputs))
        components[f"Inputs.{card_id}"]["title"] = f"Inputs of {card_id}"
    step = components.get("CardStep", {}).get("properties", {}).get("inputs")
    if step is not None:
        kept = {key: step[key] for key in ("default", "examples") if key in step}
        step.clear()
        step.update(
            kept,
            anyOf=inputs,
            description="The inputs of the step's card: the Inputs.<card id> schema. Any "
            "value may instead be a {{ expression }}, resolved when the card runs.",
        )
