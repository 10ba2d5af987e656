"""A token endpoint whose failures a test scripts: real HTTP on 127.0.0.1, for conditions
a real authorization server cannot be made to produce on cue (a 503 burst, a secret
rotated between two requests)."""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.conftest import serve


@dataclass
class ScriptedTokenEndpoint:
    secret: str
    failures: list[int] = field(default_factory=list)  # statuses to answer before succeeding
    expires_in: int = 900
    calls: int = 0
    issued: list[str] = field(default_factory=list)
    url: str = ""

    async def token(self, request: Request) -> JSONResponse:
        self.calls += 1
        if self.failures:
            return JSONResponse({"error": "temporarily_unavailable"}, self.failures.pop(0))
        header = request.headers.get("authorization", "")
        _client_id, _, secret = (
            base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
        )
        if unquote(secret) != self.secret:
            return JSONResponse({"error": "invalid_client"}, 401)
        form = await request.form()
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, 400)
        token = secrets.token_urlsafe(16)
        self.issued.append(token)
        return JSONResponse(
            {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in},
            headers={"Cache-Control": "no-store"},
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ScriptedTokenEndpoint]:
        app = Starlette(routes=[Route("/token", self.token, methods=["POST"])])
        async with serve(app) as base:
            self.url = f"{base}/token"
            yield self
