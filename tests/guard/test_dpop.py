"""DPoP at the guard (RFC 9449 §7, §9): a bound token (``cnf.jkt``) is accepted only with
the ``DPoP`` scheme and a proof of its key for this very request and token; RFC 9449's
negative matrix is a 401 ``invalid_dpop_proof`` with a ``DPoP`` challenge; a bound token
sent as a bearer token is refused (§7.2); bearer tokens keep working unless the resource
requires DPoP. The guard runs as pure ASGI; proofs come from joserfc."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from mcpward.audit import AuditLog, MemorySink
from mcpward.dpop import NonceSource
from mcpward.guard import StaticKeys, make_guard, manifest_from_code, protect
from tests.dpop_proofs import Prover, hmac_proof, unsigned

from .support import ISSUER, RESOURCE, Minter
from .test_attacks import CALL, ok_app

MANIFEST = manifest_from_code("t", {"search_orders": ["orders.read"], "refund": ["refund.admin"]})
ALGS = 'algs="ES256 ES384 EdDSA RS256 PS256"'
PRM = "http://127.0.0.1/.well-known/oauth-protected-resource/mcp"


class Guarded:
    def __init__(self, minter: Minter, **kwargs: Any) -> None:
        self.sink = MemorySink()
        self.guard = make_guard(
            issuer=ISSUER,
            resource=RESOURCE,
            manifest=MANIFEST,
            keys=StaticKeys(minter.jwks()),
            audit=AuditLog([self.sink]),
            **kwargs,
        )
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=protect(ok_app, self.guard)),
            base_url="http://127.0.0.1",
        )

    async def call(
        self,
        token: str,
        *proofs: str,
        scheme: str = "DPoP",
        body: dict[str, Any] = CALL,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = [("authorization", f"{scheme} {token}"), *(("dpop", p) for p in proofs)]
        sent += list((headers or {}).items())
        return await self.http.post("/mcp", json=body, headers=sent)


@pytest.fixture
async def guarded(minter: Minter) -> AsyncIterator[Guarded]:
    g = Guarded(minter)
    async with g.http:
        yield g


def bound(minter: Minter, prover: Prover, scope: str = "orders.read") -> str:
    return minter.mint(scope, cnf={"jkt": prover.jkt})


def refused(response: httpx.Response, error: str) -> str:
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert f'error="{error}"' in challenge
    return challenge


# -- what passes ------------------------------------------------------------------------


async def test_a_bound_token_with_a_proof_of_its_key(minter: Minter, guarded: Guarded) -> None:
    prover = Prover()
    token = bound(minter, prover)
    answer = await guarded.call(token, prover.proof(RESOURCE, access_token=token))
    assert answer.status_code == 200, answer.text
    # The htu is compared without query: the same proof shape for a request with one.
    with_query = await guarded.http.post(
        "/mcp?x=1",
        json=CALL,
        headers={
            "authorization": f"DPoP {token}",
            "dpop": prover.proof(RESOURCE + "?x=1", access_token=token),
        },
    )
    assert with_query.status_code == 200
    lines = "\n".join(guarded.sink.lines)
    assert token not in lines and "dpop+jwt" not in lines


async def test_bearer_tokens_without_cnf_keep_working(minter: Minter, guarded: Guarded) -> None:
    assert (await guarded.call(minter.mint(), scheme="Bearer")).status_code == 200


# -- RFC 9449 §7.1 / §4.3 at the resource: the negative matrix -----------------------------


async def test_the_negative_matrix_is_invalid_dpop_proof(minter: Minter, guarded: Guarded) -> None:
    prover, other = Prover(), Prover()
    token = bound(minter, prover)
    another_token = bound(minter, prover)
    cases: dict[str, tuple[list[str], dict[str, str]]] = {
        "no proof": ([], {}),
        "two proofs": ([prover.proof(RESOURCE, access_token=token)] * 2, {}),
        "wrong htm": ([prover.proof(RESOURCE, "GET", access_token=token)], {}),
        "wrong htu path": ([prover.proof("http://127.0.0.1/other", access_token=token)], {}),
        # A client (or proxy) can set Host to anything: htu is checked against the
        # configured resource URL, so a proof for the spoofed host does not pass.
        "htu of a spoofed Host": (
            [prover.proof("http://evil.example/mcp", access_token=token)],
            {"host": "evil.example"},
        ),
        "ath of another token": ([prover.proof(RESOURCE, access_token=another_token)], {}),
        "no ath": ([prover.proof(RESOURCE)], {}),
        "signed by the key in its header, not the token's": (
            [other.proof(RESOURCE, access_token=token)],
            {},
        ),
        "header key differs from the signer": (
            [prover.proof(RESOURCE, access_token=token, signer=other.key)],
            {},
        ),
        "typ": ([prover.proof(RESOURCE, access_token=token, header={"typ": "jwt"})], {}),
        "alg none": ([unsigned(prover, RESOURCE)], {}),
        "HMAC": ([hmac_proof(prover, RESOURCE)], {}),
        "expired iat": ([prover.proof(RESOURCE, access_token=token, iat=_now() - 300)], {}),
        "future iat": ([prover.proof(RESOURCE, access_token=token, iat=_now() + 120)], {}),
    }
    for name, (proofs, headers) in cases.items():
        answer = await guarded.call(token, *proofs, headers=headers)
        challenge = refused(answer, "invalid_dpop_proof")
        # The error rides on the DPoP challenge, Bearer (still accepted) named first.
        assert challenge.startswith(f'Bearer resource_metadata="{PRM}", DPoP error='), name
        assert ALGS in challenge, name
        assert answer.json()["error"] == "invalid_dpop_proof", name
    outcomes = {e["reason"] for e in guarded.sink.events() if e["event"] == "mcp.request"}
    assert outcomes == {"invalid_dpop_proof"}


async def test_a_proof_is_used_once(minter: Minter, guarded: Guarded) -> None:
    prover = Prover()
    token = bound(minter, prover)
    proof = prover.proof(RESOURCE, access_token=token)
    assert (await guarded.call(token, proof)).status_code == 200
    again = await guarded.call(token, proof)
    refused(again, "invalid_dpop_proof")
    assert "already used" in again.json()["error"]["message"]


async def test_bearer_downgrade_of_a_bound_token_is_refused(
    minter: Minter, guarded: Guarded
) -> None:
    """RFC 9449 §7.2: a DPoP-bound token presented with the Bearer scheme."""
    prover = Prover()
    token = bound(minter, prover)
    answer = await guarded.call(token, prover.proof(RESOURCE, access_token=token), scheme="Bearer")
    challenge = refused(answer, "invalid_token")
    assert challenge.startswith('Bearer error="invalid_token"')


async def test_an_unbound_token_with_the_dpop_scheme_is_refused(
    minter: Minter, guarded: Guarded
) -> None:
    prover = Prover()
    token = minter.mint()
    answer = await guarded.call(token, prover.proof(RESOURCE, access_token=token))
    assert refused(answer, "invalid_token").startswith(
        f'Bearer resource_metadata="{PRM}", DPoP error="invalid_token"'
    )


async def test_a_confirmation_the_guard_cannot_check_is_refused(
    minter: Minter, guarded: Guarded
) -> None:
    """A token bound to a TLS certificate (RFC 8705 ``x5t#S256``) is not a bearer token."""
    token = minter.mint(cnf={"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"})
    refused(await guarded.call(token, scheme="Bearer"), "invalid_token")


async def test_step_up_for_a_bound_token_is_a_dpop_challenge(
    minter: Minter, guarded: Guarded
) -> None:
    prover = Prover()
    token = bound(minter, prover)
    call = {**CALL, "params": {"name": "refund"}}
    answer = await guarded.call(token, prover.proof(RESOURCE, access_token=token), body=call)
    assert answer.status_code == 403
    challenge = answer.headers["www-authenticate"]
    assert 'DPoP error="insufficient_scope"' in challenge
    assert 'scope="orders.read refund.admin"' in challenge and ALGS in challenge


async def test_revocation_works_for_bound_tokens(minter: Minter) -> None:
    from mcpward.revocation import InProcessRevocations, Revocation

    view = InProcessRevocations()
    g = Guarded(minter, revocations=view)
    prover = Prover()
    token = minter.mint(cnf={"jkt": prover.jkt}, jti="bound-1")
    async with g.http:
        assert (await g.call(token, prover.proof(RESOURCE, access_token=token))).status_code == 200
        await view.publish([Revocation("jti", "bound-1", _now(), _now() + 900)])
        answer = await g.call(token, prover.proof(RESOURCE, access_token=token))
        assert refused(answer, "invalid_token").startswith(
            f'Bearer resource_metadata="{PRM}", DPoP error="invalid_token"'
        )


# -- per-resource policy -------------------------------------------------------------------


async def test_a_resource_requiring_dpop_refuses_bearer_tokens(minter: Minter) -> None:
    g = Guarded(minter, dpop_required=True)
    async with g.http:
        challenge = refused(await g.call(minter.mint(), scheme="Bearer"), "invalid_token")
        assert challenge.startswith('DPoP error="invalid_token"') and "Bearer" not in challenge
        missing = await g.http.post("/mcp", json=CALL)
        assert missing.headers["www-authenticate"] == f'DPoP {ALGS}, resource_metadata="{PRM}"'
        prm = (await g.http.get("/.well-known/oauth-protected-resource/mcp")).json()
        assert prm["dpop_bound_access_tokens_required"] is True
        prover = Prover()
        token = bound(minter, prover)
        assert (await g.call(token, prover.proof(RESOURCE, access_token=token))).status_code == 200


async def test_a_resource_without_dpop_speaks_bearer_only(minter: Minter) -> None:
    g = Guarded(minter, dpop=False)
    async with g.http:
        prover = Prover()
        token = bound(minter, prover)
        answer = await g.call(token, prover.proof(RESOURCE, access_token=token))
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == f'Bearer resource_metadata="{PRM}"'
        prm = (await g.http.get("/.well-known/oauth-protected-resource/mcp")).json()
        assert "dpop_signing_alg_values_supported" not in prm


async def test_resource_nonces(minter: Minter) -> None:
    """RFC 9449 §9: the resource hands out its nonce with ``use_dpop_nonce``."""
    g = Guarded(minter, dpop_nonces=NonceSource(b"n" * 32))
    prover = Prover()
    token = bound(minter, prover)
    async with g.http:
        first = await g.call(token, prover.proof(RESOURCE, access_token=token))
        assert refused(first, "use_dpop_nonce").startswith(
            f'Bearer resource_metadata="{PRM}", DPoP error="use_dpop_nonce"'
        )
        nonce = first.headers["dpop-nonce"]
        retried = await g.call(token, prover.proof(RESOURCE, access_token=token, nonce=nonce))
        assert retried.status_code == 200, retried.text


def _now() -> float:
    import time

    return time.time()
