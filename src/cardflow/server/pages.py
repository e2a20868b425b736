"""Minimal server-rendered pages (the web app issue replaces these with the real UI)."""

from __future__ import annotations

from html import escape

from fastapi.responses import HTMLResponse

from cardflow.oauth import CallbackOutcome

# No script at all on these pages; nothing injected can run.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · cardflow</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d2330; }}
main {{ max-width: 36rem; margin: 4rem auto; background: #fff; padding: 2rem;
        border-radius: 8px; box-shadow: 0 1px 3px rgba(0,0,0,.12); }}
h1 {{ font-size: 1.4rem; margin-top: 0; color: {color}; }}
dl {{ display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }}
dt {{ color: #5a6477; }}
</style></head>
<body><main role="main"><h1 id="result" data-ok="{ok}">{title}</h1>
<p>{message}</p>{details}</main></body></html>
"""


def callback_page(outcome: CallbackOutcome) -> HTMLResponse:
    details = ""
    if outcome.connection is not None:
        conn = outcome.connection
        details = (
            "<dl>"
            f"<dt>Connection</dt><dd>{escape(conn.name)}</dd>"
            f"<dt>Status</dt><dd id='status'>{escape(conn.status)}</dd>"
            "</dl>"
        )
    html = _PAGE.format(
        title=escape(outcome.title),
        message=escape(outcome.message),
        details=details,
        ok="true" if outcome.ok else "false",
        color="#1a7f37" if outcome.ok else "#b42318",
    )
    return HTMLResponse(html, status_code=200 if outcome.ok else 400, headers=SECURITY_HEADERS)
