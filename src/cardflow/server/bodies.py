"""Request bodies as the REST API reads them: JSON bounded in nesting, clean of lone
surrogates, parsed off the event loop when large.

FastAPI parses JSON bodies with ``json.loads``: a body nested a thousand levels deep
raises RecursionError (a 500), one holding ``"\\ud800"`` is accepted and later breaks
every response and database write that touches it, and ten megabytes hold the event
loop for a third of a second. Every router uses :class:`JsonRoute`, whose requests parse
with :mod:`cardflow.jsondata` instead (the FastAPI way to customise body parsing).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

from cardflow import jsondata
from cardflow.jsondata import TooDeep
from cardflow.server.deps import SAFE_METHODS, route_rule


class JsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            max_depth = self.app.state.cardflow.settings.max_nesting_depth
            try:
                self._json = await jsondata.loads_async(body, max_depth=max_depth)
            except TooDeep:
                raise HTTPException(
                    status_code=400,
                    detail=f"The request body nests deeper than {max_depth} levels "
                    "(CARDFLOW_MAX_NESTING_DEPTH).",
                ) from None
            except ValueError as exc:
                if isinstance(exc, json.JSONDecodeError):
                    raise  # FastAPI answers it as invalid JSON, with the position
                raise HTTPException(
                    status_code=400, detail=f"The request body is not valid JSON: {exc}."
                ) from None
        return self._json


class JsonRoute(APIRoute):
    """A route whose body is read as above and, when it has a role rule, only after the
    caller has passed it: FastAPI reads the body before it runs any dependency, so a
    stranger's malformed body would get a 400/422 (telling them about the API) where a
    401 is due, and a viewer's a 422 where a 403 is. Its rule is shown in the OpenAPI
    document as ``x-min-role``."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        rule = route_rule(self.dependant)
        if rule is not None:
            self.openapi_extra = {**(self.openapi_extra or {}), "x-min-role": str(rule.role)}

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        rule = route_rule(self.dependant)

        async def route_handler(request: Request) -> Response:
            json_request = JsonRequest(request.scope, request.receive)
            if rule is not None and request.method not in SAFE_METHODS:
                await rule.check(json_request)  # checked again, from memory
            return await handler(json_request)

        return route_handler
