"""The verifier on its own: key discovery and rotation over real HTTP, the verified-token
cache with a moved clock, claim presets, EdDSA."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import OKPKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mcpward._clock import FrozenClock
from mcpward.guard import (
    KEYCLOAK,
    OKTA,
    InvalidToken,
    IssuerDiscoveryError,
    JWTVerifier,
    RemoteJWKS,
    StaticKeys,
    discover,
)
from mcpward.guard._claims import AUTH0, CLERK
from mcpward.guard._discovery import well_known_urls

from .support import ISSUER, RESOURCE, Minter, free_port, serve


class FakeIssuer:
    """A minimal metadata + JWKS publisher over real HTTP (what matters here is our
    client's behaviour: paths, caching, throttling). It counts JWKS fetches."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        self.issuer = ""

    def app(self) -> Starlette:
        async def metadata(request: Request) -> JSONResponse:
            return JSONResponse({"issuer": self.issuer, "jwks_uri": f"{self.issuer}/jwks"})

        async def jwks(request: Request) -> JSONResponse:
            self.fetches += 1
            return JSONResponse({"keys": self.keys})

        return Starlette(
            routes=[
                Route("/.well-known/oauth-authorization-server/tenant", metadata),
                Route("/tenant/jwks", jwks),
            ]
        )


@pytest.fixture(scope="module")
def fake_issuer() -> Iterator[FakeIssuer]:
    fake = FakeIssuer()
    port = free_port()
    fake.issuer = f"http://127.0.0.1:{port}/tenant"
    with serve(fake.app(), port):
        yield fake


def test_well_known_urls_insert_the_path() -> None:
    assert well_known_urls("https://id.example/tenant/") == [
        "https://id.example/.well-known/oauth-authorization-server/tenant",
        "https://id.example/tenant/.well-known/openid-configuration",
    ]


async def test_rotation_is_picked_up_and_refetches_are_throttled(fake_issuer: FakeIssuer) -> None:
    old, new = Minter(fake_issuer.issuer, kid="old"), Minter(fake_issuer.issuer, kid="new")
    fake_issuer.keys = old.jwks()["keys"]
    clock = FrozenClock()
    async with httpx.AsyncClient() as http:
        keys = await RemoteJWKS.from_issuer(
            fake_issuer.issuer, http, min_refetch_interval=30, clock=clock
        )
        verifier = JWTVerifier(issuer=fake_issuer.issuer, audience=RESOURCE, keys=keys)
        start = fake_issuer.fetches
        await verifier.verify(old.mint())
        assert fake_issuer.fetches - start == 1
        # The issuer rotates; the first token with the new kid triggers one refetch.
        fake_issuer.keys = old.jwks()["keys"] + new.jwks()["keys"]
        clock.advance(31)
        identity = await verifier.verify(new.mint())
        assert identity.subject == "user-1"
        assert fake_issuer.fetches - start == 2
        # A flood of made-up kids costs at most one fetch per interval.
        for i in range(20):
            with pytest.raises(InvalidToken, match="unknown key"):
                await verifier.verify(new.mint(header={"kid": f"bogus-{i}"}))
        assert fake_issuer.fetches - start == 2


async def test_discovery_refuses_a_document_for_another_issuer(fake_issuer: FakeIssuer) -> None:
    async with httpx.AsyncClient() as http:
        doc = await discover(fake_issuer.issuer, http)
        assert doc["jwks_uri"].endswith("/tenant/jwks")
        with pytest.raises(IssuerDiscoveryError):
            await discover(fake_issuer.issuer.replace("/tenant", "/other"), http)


async def test_cache_hit_still_expires(minter: Minter) -> None:
    clock = FrozenClock()
    verifier = JWTVerifier(
        issuer=ISSUER, audience=RESOURCE, keys=StaticKeys(minter.jwks()), clock=clock, leeway=5
    )
    token = minter.mint(iat=int(clock.now), exp=int(clock.now) + 60)
    await verifier.verify(token)
    await verifier.verify(token)  # cached
    clock.advance(66)
    with pytest.raises(InvalidToken, match="expired"):
        await verifier.verify(token)


def test_hmac_algorithms_are_refused_at_configuration(minter: Minter) -> None:
    with pytest.raises(ValueError, match="HS256"):
        JWTVerifier(
            issuer=ISSUER, audience=RESOURCE, keys=StaticKeys(minter.jwks()), algorithms=["HS256"]
        )


@pytest.mark.parametrize("alg", ["EdDSA", "Ed25519"])
async def test_eddsa_tokens(alg: str) -> None:
    key = OKPKey.generate_key("Ed25519", parameters={"kid": "ed", "use": "sig"})
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": RESOURCE, "sub": "u", "exp": now + 60, "iat": now}
    # joserfc warns when signing with the deprecated "EdDSA" name; the guard accepts it
    # quietly when verifying (tokens in the wild still use it).
    with pytest.warns(SecurityWarning) if alg == "EdDSA" else contextlib.nullcontext():
        token = jwt.encode(
            {"alg": alg, "typ": "at+jwt", "kid": "ed"}, claims, key, algorithms=[alg]
        )
    jwks = {"keys": [key.as_dict(private=False)]}
    verifier = JWTVerifier(issuer=ISSUER, audience=RESOURCE, keys=StaticKeys(jwks))
    assert (await verifier.verify(token)).subject == "u"


@pytest.mark.parametrize(
    ("preset", "claims", "scopes", "client", "roles"),
    [
        (
            OKTA,
            {"scp": ["orders.read", "refund.admin"], "cid": "0oa1", "groups": ["ops"]},
            {"orders.read", "refund.admin"},
            "0oa1",
            {"ops"},
        ),
        (
            AUTH0,
            {"scope": "orders.read", "permissions": ["refund.admin"], "azp": "abc"},
            {"orders.read", "refund.admin"},
            "abc",
            set(),
        ),
        (
            KEYCLOAK,
            {"scope": "openid orders.read", "azp": "kc", "realm_access": {"roles": ["admin"]}},
            {"openid", "orders.read"},
            "kc",
            {"admin"},
        ),
        (
            # Clerk: OAuth access tokens carry the granted scopes as a space-separated
            # "scope" (an "scp" list also counts), the OAuth app in "client_id" (a session
            # token only "azp") and the organization role in "org_role".
            CLERK,
            {
                "scope": "profile orders.read",
                "scp": ["refund.admin"],
                "client_id": "clerk_oauth_app",
                "azp": "https://app.example.com",
                "org_role": "org:admin",
            },
            {"profile", "orders.read", "refund.admin"},
            "clerk_oauth_app",
            {"org:admin"},
        ),
        (
            CLERK,
            {"scope": "orders.read", "azp": "https://app.example.com"},
            {"orders.read"},
            "https://app.example.com",
            set(),
        ),
    ],
    ids=["okta", "auth0", "keycloak", "clerk", "clerk-session-azp"],
)
async def test_claim_presets(
    minter: Minter,
    preset: Any,
    claims: dict[str, Any],
    scopes: set[str],
    client: str,
    roles: set[str],
) -> None:
    verifier = JWTVerifier(
        issuer=ISSUER, audience=RESOURCE, keys=StaticKeys(minter.jwks()), claims=preset
    )
    # These providers sign "typ": "JWT"; the presets accept it.
    merged: dict[str, Any] = {"scope": None, "client_id": None, **claims}
    token = minter.mint(header={"typ": "JWT"}, **merged)
    identity = await verifier.verify(token)
    assert identity.scopes == scopes
    assert identity.client_id == client
    assert identity.roles == roles
