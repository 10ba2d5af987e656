"""The small security pieces on their own: cookie sealing, CSRF, TOTP replay, throttling,
CSP form targets."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pyotp
import pytest

from mcpward._clock import FrozenClock
from mcpward.server.pages._render import content_security_policy, form_target
from mcpward.server.pages._session import Signer
from mcpward.server.pages._throttle import MemoryThrottle, RedisThrottle, Throttle
from mcpward.server.pages._totp import new_secret, verify
from mcpward.server.pages.settings import LoginLimits


def test_sealed_values_resist_tampering_and_purpose_confusion() -> None:
    signer = Signer(b"k" * 32)
    token = signer.seal("session", {"uid": "u1"})
    assert signer.open("session", token) == {"uid": "u1"}
    assert signer.open("upstream", token) is None
    body, mac = token.split(".")
    assert signer.open("session", body[:-2] + "xx." + mac) is None
    assert signer.open("session", token + "x") is None
    assert Signer(b"j" * 32).open("session", token) is None
    assert signer.open("session", "") is None


def test_csrf_token_is_bound_to_the_session() -> None:
    signer = Signer(b"k" * 32)
    assert signer.check_csrf("sid-1", signer.csrf_token("sid-1"))
    assert not signer.check_csrf("sid-2", signer.csrf_token("sid-1"))
    assert not signer.check_csrf("sid-1", None)
    assert not signer.check_csrf("sid-1", "")


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def throttle(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Throttle, FrozenClock]]:
    clock = FrozenClock(1_800_000_000.0)
    limits = LoginLimits(account_failures=3, address_failures=5)
    if request.param == "memory":
        yield MemoryThrottle(limits, clock), clock
        return
    import redis.asyncio

    client = redis.asyncio.from_url(request.getfixturevalue("redis_url"))
    prefix = f"test:{secrets.token_hex(4)}:"
    yield RedisThrottle(client, limits, clock, prefix=prefix), clock
    await client.aclose()


async def test_totp_code_is_accepted_once(throttle: tuple[Throttle, FrozenClock]) -> None:
    ledger, clock = throttle
    secret = new_secret()
    now = clock()
    code = pyotp.TOTP(secret).at(int(now))
    assert await verify(ledger, "u1", secret, code, now)
    assert not await verify(ledger, "u1", secret, code, now + 5)
    assert not await verify(ledger, "u1", secret, "12345", now)
    assert not await verify(ledger, "u1", secret, "abcdef", now)
    # An older code, still inside the drift window, is refused once a newer one was used.
    later = pyotp.TOTP(secret).at(int(now + 30))
    assert await verify(ledger, "u1", secret, later, now + 30)
    assert not await verify(ledger, "u1", secret, code, now + 30)
    too_old = pyotp.TOTP(secret).at(int(now - 120))
    assert not await verify(ledger, "u2", secret, too_old, now)


async def test_throttle_locks_account_and_address_separately(
    throttle: tuple[Throttle, FrozenClock],
) -> None:
    limiter, clock = throttle
    for _ in range(2):
        assert (await limiter.failed("Alice", "10.0.0.1")).allowed
    verdict = await limiter.failed("alice ", "10.0.0.1")  # same account, however typed
    assert not verdict.allowed and verdict.scope == "account"
    assert not (await limiter.check("ALICE", "10.0.0.9")).allowed
    assert (await limiter.check("bob", "10.0.0.1")).allowed
    # Spraying many accounts from one address trips the address limit.
    await limiter.failed("carol", "10.0.0.1")
    sprayed = await limiter.failed("dave", "10.0.0.1")
    assert not sprayed.allowed and sprayed.scope == "address"
    assert not (await limiter.check("erin", "10.0.0.1")).allowed
    clock.advance(15 * 60 + 1)
    assert (await limiter.check("alice", "10.0.0.1")).allowed
    # A success clears the account's failures.
    await limiter.failed("bob", "10.0.0.2")
    await limiter.failed("bob", "10.0.0.2")
    await limiter.succeeded("bob")
    assert (await limiter.failed("bob", "10.0.0.2")).allowed


def test_form_targets_for_csp() -> None:
    assert form_target("http://127.0.0.1:33418/callback?x=1") == "http://127.0.0.1:33418"
    assert form_target("https://user@app.example.com/cb") == "https://app.example.com"
    assert form_target("cursor://anysphere.cursor-mcp/oauth") == "cursor:"
    assert form_target("java script:alert(1)") is None
    csp = content_security_policy(["https://app.example.com"])
    assert "form-action 'self' https://app.example.com" in csp
    assert "frame-ancestors 'none'" in csp


def test_form_targets_cannot_smuggle_csp_directives() -> None:
    assert form_target("https://a.example;script-src */cb") is None
    assert form_target("https://a.example cb/x") is None
    assert form_target("x;y://z") is None
    assert form_target("http://[::1]:8080/cb") == "http://[::1]:8080"
