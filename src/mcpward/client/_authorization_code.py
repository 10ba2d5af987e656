"""The front-channel half of the authorization code grant: the request URL with PKCE,
`state` and `resource` (RFC 6749 §4.1.1, RFC 7636, RFC 8707), waiting for the redirect,
and the checks on the response: `state`, then `iss` (RFC 9207), then `error`, then `code`.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlencode

from mcpward.client._discovery import ServerMetadata
from mcpward.client._loopback import LoopbackListener
from mcpward.client._pkce import Pkce
from mcpward.client.errors import AuthorizationError

AuthorizeHandler = Callable[[str], Awaitable[None]]
"""Gets the user's browser to the authorization URL. The loopback listener takes the redirect."""


def authorization_url(
    endpoint: str,
    *,
    client_id: str,
    redirect_uri: str,
    pkce: Pkce,
    state: str,
    resource: str,
    scopes: Sequence[str],
    dpop_jkt: str | None = None,
) -> str:
    """``dpop_jkt`` binds the code to the session's DPoP key (RFC 9449 §10)."""
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "code_challenge": pkce.challenge,
        "code_challenge_method": pkce.method,
        "state": state,
        "resource": resource,
    }
    if scopes:
        params["scope"] = " ".join(scopes)
    if dpop_jkt is not None:
        params["dpop_jkt"] = dpop_jkt
    separator = "&" if "?" in endpoint else "?"
    return f"{endpoint}{separator}{urlencode(params)}"


async def await_redirect(
    authorize: AuthorizeHandler, url: str, listener: LoopbackListener, seconds: float
) -> dict[str, str]:
    """Run the handler (open the browser) and wait for the redirect, whichever fails first."""
    opener = asyncio.ensure_future(authorize(url))
    waiter = asyncio.ensure_future(listener.wait(seconds))
    try:
        done, _ = await asyncio.wait({opener, waiter}, return_when=asyncio.FIRST_COMPLETED)
        failure = opener.exception() if opener in done else None
        if failure is not None and waiter not in done:
            raise AuthorizationError(f"could not start the sign-in: {failure!r}") from failure
        return await waiter
    finally:
        for task in (opener, waiter):
            if not task.done():
                task.cancel()
        await asyncio.gather(opener, waiter, return_exceptions=True)


def check_response(result: dict[str, str], state: str, server: ServerMetadata) -> str:
    """The authorization code, once the response has passed every check."""
    if not hmac.compare_digest(result.get("state", ""), state):
        raise AuthorizationError("the authorization response's state does not match", "state")
    iss = result.get("iss")
    # RFC 9207 §2.4: required when advertised; compared whenever present (mix-up defence),
    # character for character: no case folding, port or trailing-slash normalisation
    # (MCP 2026-07-28, SEP-2468), so a look-alike issuer is a mismatch.
    if iss is None and server.authorization_response_iss_parameter_supported:
        raise AuthorizationError("the authorization response lacks iss", "iss")
    if iss is not None and iss != server.issuer:
        raise AuthorizationError(
            f"the authorization response comes from {iss!r}, not {server.issuer!r}", "iss"
        )
    if "error" in result:
        description = result.get("error_description")
        raise AuthorizationError(
            f"sign-in refused: {result['error']}" + (f": {description}" if description else ""),
            result["error"],
        )
    code = result.get("code")
    if not code:
        raise AuthorizationError("the authorization response carries no code", "code")
    return code
