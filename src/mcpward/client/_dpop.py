"""DPoP on the client side (RFC 9449): the key a session proves possession of, a fresh
proof on every token request and every resource request, and the nonces servers hand out.

A session uses DPoP when its authorization server advertises an algorithm we sign with
(``dpop_signing_alg_values_supported``, RFC 9449 §5.1): ES256 by default. The key is the
session's: a person's client keeps it beside the refresh token in the token store, since
a public client's refresh token is bound to it (§5) and must survive a restart.

Nonces (§8, §9) are remembered per URL (without query) from any ``DPoP-Nonce`` header and
put in the next proof for that URL; a ``use_dpop_nonce`` answer is retried once with the
new nonce.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from mcpward.client._challenge import parse_bearer
from mcpward.client._flow import FlowAuth, Request, Response
from mcpward.dpop import ProofAlgorithm, ProofKey, htu_of

__all__ = ["DPoP", "authorize", "dpop_for", "request_headers"]

# What we sign with, in order of preference when the server offers several.
PREFERENCE: tuple[ProofAlgorithm, ...] = ("ES256", "EdDSA", "ES384")


class DPoP:
    """One session's DPoP key and the nonces its servers gave it."""

    def __init__(self, key: ProofKey) -> None:
        self.key = key
        self._nonces: dict[str, str] = {}

    @property
    def jkt(self) -> str:
        """The key's thumbprint (``dpop_jkt``, ``cnf.jkt``)."""
        return self.key.jkt

    def stored(self) -> dict[str, str]:
        """The private key, for the token store beside the refresh token."""
        return self.key.private_jwk()

    def proof(self, method: str, url: str, access_token: str | None = None) -> str:
        return self.key.proof(
            method, url, access_token=access_token, nonce=self._nonces.get(htu_of(url))
        )

    def remember(self, url: str, headers: Any) -> bool:
        """Keep a ``DPoP-Nonce`` the server at ``url`` sent; True when it is a new one."""
        nonce = headers.get("dpop-nonce")
        key = htu_of(url)
        if not isinstance(nonce, str) or not nonce or self._nonces.get(key) == nonce:
            return False
        self._nonces[key] = nonce
        return True

    def nonce_challenge(self, url: str, response: Response) -> bool:
        """Whether a resource's 401 asks for a (new) nonce (§9), which is then kept."""
        if response.status_code != 401:
            return False
        challenge = parse_bearer(response.headers.get_list("www-authenticate"))
        if challenge is None or challenge.error != "use_dpop_nonce":
            return False
        return self.remember(url, response.headers)


def dpop_for(
    supported: Sequence[str] | None,
    stored: Mapping[str, Any] | None = None,
    *,
    enabled: bool = True,
    algorithm: ProofAlgorithm = "ES256",
) -> DPoP | None:
    """The DPoP state for a session at an authorization server advertising ``supported``:
    the ``stored`` key when there is one (a bound refresh token needs it), else a new key;
    None when DPoP is off or the server signs nothing we can sign with."""
    if not enabled or not supported:
        return None
    if stored is not None:
        try:
            return DPoP(ProofKey.from_jwk(stored))
        except (ValueError, KeyError, TypeError):
            pass  # unreadable: a new key; a refresh it cannot prove signs in again
    choices = [algorithm, *PREFERENCE]
    chosen = next((alg for alg in choices if alg in supported), None)
    return DPoP(ProofKey.generate(chosen)) if chosen is not None else None


def authorize(request: Request, token_type: str, access_token: str, dpop: DPoP | None) -> None:
    """Put the token on ``request``: the DPoP scheme and a fresh proof for a DPoP-bound
    token (RFC 9449 §7.1), the Bearer scheme otherwise."""
    if token_type == "DPoP" and dpop is not None:
        request.headers["Authorization"] = f"DPoP {access_token}"
        request.headers["DPoP"] = dpop.proof(request.method, str(request.url), access_token)
    else:
        request.headers["Authorization"] = f"Bearer {access_token}"
        request.headers.pop("DPoP", None)


async def request_headers(auth: FlowAuth, method: str, url: str) -> dict[str, str]:
    """What ``auth`` puts on one ``method`` request to ``url``: ``Authorization`` and, for a
    DPoP-bound token, a ``DPoP`` proof good for exactly that request, once (for scripts
    that make the request themselves)."""
    flow = auth.async_auth_flow(httpx.Request(method, url))
    try:
        sent = await flow.__anext__()
    finally:
        await flow.aclose()
    return {k: v for k, v in sent.headers.items() if k.lower() in ("authorization", "dpop")}
