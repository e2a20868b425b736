"""/docs: Swagger UI for the OpenAPI document, served by cardflow itself (works offline).

The assets (Swagger UI 5, which reads OpenAPI 3.1) come from the pinned ``fastapi-offline``
package, made to serve FastAPI's docs without a CDN; only its files are used. The page has
no inline script (its start-up code is static/js/swagger-init.js), like every other page.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

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
