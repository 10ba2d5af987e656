"""The authorize → code → token sequence the server tests share.

A code comes from the code-issuing core the login pages use (``validate_request`` then
``issue_code``, for ``user-1``), as if the user had signed in and consented; it is redeemed
at ``/token`` over real HTTP.
"""

from __future__ import annotations

import httpx

from mcpward.server import issue_code, validate_request
from mcpward.server._rfc7636 import s256
from tests.server.conftest import RESOURCE, Running

REDIRECT = "http://127.0.0.1:33418/callback"
ISSUER = "http://127.0.0.1:8400"


async def public_client(r: Running, client_id: str = "cli") -> None:
    await r.confidential_client(
        client_id,
        method="none",
        allowed_scope=None,
        grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(REDIRECT,),
    )


async def get_code(
    r: Running,
    verifier: str,
    *,
    client_id: str = "cli",
    scope: str = "orders.read orders.write",
    redirect_uri: str = REDIRECT,
    state: str | None = "xyz",
    **extra: str,
) -> str:
    """The code for an authorization request with PKCE S256 over ``verifier`` (and the
    ``extra`` parameters); the redirect it comes in carries the ``state`` sent and
    RFC 9207's ``iss``."""
    params = {
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
        "scope": scope,
        **extra,
    }
    if state is not None:
        params["state"] = state
    request = await validate_request(r.server, params, [RESOURCE])
    location = await issue_code(r.server, request, subject="user-1", auth_time=r.clock())
    query = httpx.URL(location).params
    assert query.get("state") == state
    assert query["iss"] == ISSUER
    return query["code"]


def code_grant(
    code: str, verifier: str, *, client_id: str = "cli", redirect_uri: str = REDIRECT
) -> dict[str, str]:
    """The token request's form for redeeming ``code``."""
    return {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
        "resource": RESOURCE,
    }


async def redeem(
    r: Running,
    code: str,
    verifier: str,
    client_id: str = "cli",
    *,
    redirect_uri: str = REDIRECT,
    **extra: str,
) -> httpx.Response:
    data = code_grant(code, verifier, client_id=client_id, redirect_uri=redirect_uri)
    return await r.http.post("/token", data={**data, **extra})


async def code_flow(
    r: Running, verifier: str, *, client_id: str, redirect_uri: str, scope: str
) -> httpx.Response:
    """The whole sequence: authorize, then redeem the code (no ``state``)."""
    code = await get_code(
        r, verifier, client_id=client_id, scope=scope, redirect_uri=redirect_uri, state=None
    )
    return await redeem(r, code, verifier, client_id, redirect_uri=redirect_uri)


async def refresh(r: Running, token: str, **extra: str) -> httpx.Response:
    return await r.http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": token, "client_id": "cli", **extra},
    )
