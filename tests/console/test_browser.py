"""The console in Debian's chromium (Playwright) at a phone's width (390 px) and a laptop
window (1280x800): every view and every action, the step-up before destructive ones,
and the whole of an incident handled from the keyboard alone. Screenshots land in
test-artifacts/screenshots/ as console-<view>-<size>.png.

The pages carry no script (their CSP forbids it); the browser contexts run JavaScript
only so the test can measure boxes and focus (``page.evaluate``)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page

from tests.console.support import PASSWORD, ConsoleSite, Seeded, seed, start_console
from tests.pages.browser import chromium, shot
from tests.pages.layout import (
    SIZES,
    assert_fits_across,
    assert_nothing_inline,
    assert_reading_order,
    tab_stops,
)

pytestmark = pytest.mark.browser

# A fixed "now", so the dates on the pages (and in the screenshots) are known.
T0 = datetime(2026, 11, 27, 9, 30, tzinfo=UTC).timestamp()
STEP_UP = 5 * 60

Window = Callable[[str], Awaitable[Page]]


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as b:
        yield b


@pytest.fixture
async def window(browser: Browser) -> AsyncIterator[Window]:
    contexts: list[BrowserContext] = []

    async def open_window(size: str) -> Page:
        context = await browser.new_context(viewport=SIZES[size])
        contexts.append(context)
        return await context.new_page()

    try:
        yield open_window
    finally:
        for context in contexts:
            await context.close()


@pytest.fixture
async def seeded(tmp_path: Path) -> AsyncIterator[tuple[ConsoleSite, Seeded]]:
    async with start_console(tmp_path, now=T0) as site:
        yield site, await seed(site)


async def sign_in(page: Page, site: ConsoleSite, path: str = "/") -> None:
    await page.goto(site.url + path)
    await page.get_by_label("Username").fill("olivia")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_label("Authenticator code").fill(site.code())
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(re.compile(re.escape(site.url + path.split("?")[0])))


async def check(page: Page, name: str, size: str, *, refetch: bool = True) -> None:
    """Fits the window across, carries nothing inline (checked on the page fetched
    again, unless it answered a POST, which is not repeated), and is saved as a
    screenshot."""
    await assert_fits_across(page)
    if refetch:
        await assert_nothing_inline(page)
    await shot(page, f"console-{name}-{size}")


async def step_up(page: Page, site: ConsoleSite) -> None:
    await page.get_by_role("heading", name="Confirm it's you").wait_for()
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_label("Authenticator code").fill(site.code())
    await page.get_by_role("button", name="Continue").click()


async def titled(page: Page, start: str) -> None:
    """Wait for the page that a click opens: its heading begins with ``start``."""
    await page.get_by_role("heading", level=1, name=re.compile("^" + re.escape(start))).wait_for()


async def notice(page: Page, text: str) -> None:
    """The page says ``text`` in its status message (what an action reports)."""
    await page.get_by_role("status").filter(has_text=text).wait_for()


async def confirm(page: Page, button: str) -> None:
    await page.get_by_role("button", name=button).click()


@pytest.mark.parametrize("size", list(SIZES))
async def test_every_view(window: Window, seeded: tuple[ConsoleSite, Seeded], size: str) -> None:
    site, data = seeded
    page = await window(size)
    await page.goto(site.url + "/clients")
    assert page.url.startswith(site.url + "/sign-in?next=")
    await check(page, "sign-in", size)
    await sign_in(page, site, "/clients")
    views = {
        "overview": "/",
        "clients": "/clients",
        "clients-filtered": "/clients?source=dcr&status=active",
        "client": "/clients/show?id=orders-cli",
        "client-with-secret": "/clients/show?id=orders-agent",
        "users": "/users",
        "user": f"/users/show?id={data.alice.id}",
        "keys": "/keys",
        "activity": "/activity",
        "activity-rate-limited": "/activity?outcome=rate_limited&hours=24",
        "activity-user": "/activity?subject=alice&hours=168",
    }
    headings = {
        "overview": "Overview",
        "clients": "Clients",
        "clients-filtered": "Clients",
        "client": "Orders CLI",
        "client-with-secret": "Orders backfill agent",
        "users": "Users",
        "user": "Alice",
        "keys": "Signing keys",
        "activity": "Activity",
        "activity-rate-limited": "Activity",
        "activity-user": "Activity",
    }
    for name, path in views.items():
        await page.goto(site.url + path)
        await page.get_by_role("heading", level=1, name=headings[name]).wait_for()
        await check(page, name, size)
        if name in ("activity", "user"):  # what the window shows first (the README's)
            await shot(page, f"console-{name}-{size}-window", full_page=False)
    # What the views say, not only that they render.
    await page.goto(site.url + "/activity?outcome=rate_limited")
    assert await page.locator(".count-rate_limited .count-n").inner_text() == "42"
    rows = page.locator(".rows-events tbody tr")
    assert await rows.count() == 42
    assert await page.locator("svg polyline").count() == 4
    await page.goto(site.url + "/clients?source=dcr")
    assert await page.locator("tbody tr").count() == 4
    await page.goto(site.url + f"/users/show?id={data.alice.id}")
    assert await page.locator('a[aria-label^="Revoke grant"]').count() == 3


@pytest.mark.parametrize("size", list(SIZES))
async def test_every_action_with_its_step_up(
    window: Window, seeded: tuple[ConsoleSite, Seeded], size: str
) -> None:
    site, data = seeded
    page = await window(size)
    await sign_in(page, site)
    site.clock.advance(STEP_UP + 1)  # the sign-in is too old for what follows

    # Revoke one grant: asks for the step-up first, then confirms, then does it.
    await page.goto(site.url + f"/users/show?id={data.alice.id}")
    await page.locator('a[aria-label^="Revoke grant"]').first.click()
    await page.get_by_role("heading", name="Confirm it's you").wait_for()
    await check(page, "step-up", size)
    await step_up(page, site)
    await page.get_by_role("heading", name="Revoke this grant?").wait_for()
    await check(page, "confirm-revoke-grant", size)
    await confirm(page, "Revoke grant")
    await notice(page, "Grant revoked.")
    await check(page, "user-grant-revoked", size)
    family = await site.server.store.grants.family(data.families[0])
    assert family is not None and family.revoked_reason == "operator_revoked"

    # Within five minutes, no second step-up.
    await page.get_by_role("link", name="Withdraw consent for orders-cli").click()
    await titled(page, "Withdraw orders-cli")
    await check(page, "confirm-withdraw", size)
    await confirm(page, "Withdraw consent")
    await notice(page, "Consent withdrawn")

    await page.get_by_role("link", name="Revoke all tokens").click()
    await titled(page, "Revoke every token of")
    await check(page, "confirm-revoke-user", size)
    await confirm(page, "Revoke all tokens")
    await notice(page, "Every token of this user is revoked")

    await page.goto(site.url + f"/users/show?id={data.bob.id}")
    await page.get_by_role("link", name="Offboard").click()
    await titled(page, "Offboard")
    await check(page, "confirm-offboard", size)
    await confirm(page, "Offboard user")
    await notice(page, "Offboarded:")
    await check(page, "user-offboarded", size)

    # Clients: rotate a secret (shown once), revoke, disable.
    await page.goto(site.url + "/clients/show?id=orders-agent")
    await page.get_by_role("link", name="Rotate secret").click()
    await titled(page, "Rotate the secret")
    await check(page, "confirm-rotate-secret", size)
    await confirm(page, "Rotate secret")
    secret = await page.locator(".secret code").inner_text()
    assert secret.startswith("mcpw_cs_")
    assert await site.server.clients.check_secret("orders-agent", secret)
    await check(page, "secret-shown-once", size, refetch=False)
    await page.get_by_role("link", name="Done").click()
    await titled(page, "Orders backfill agent")
    assert secret not in await page.content()

    site.clock.advance(STEP_UP + 1)  # stale again: the next action asks again
    await page.get_by_role("link", name="Revoke all tokens").click()
    await step_up(page, site)
    await confirm(page, "Revoke all tokens")
    await notice(page, "Every token of this client is revoked")
    await page.get_by_role("link", name="Disable").click()
    await titled(page, "Disable")
    await check(page, "confirm-disable", size)
    await confirm(page, "Disable client")
    await notice(page, "Client disabled.")
    await check(page, "client-disabled", size)

    # Prune the abandoned registrations.
    await page.goto(site.url + "/clients")
    await page.get_by_role("link", name="Prune never-used registrations").click()
    await titled(page, "Delete 3")
    await check(page, "confirm-prune", size)
    await confirm(page, "Delete them")
    await notice(page, "3 never-used registered client(s) deleted.")

    # Keys: rotate, then rotate now.
    await page.goto(site.url + "/keys")
    await page.get_by_role("link", name="Rotate", exact=True).click()
    await titled(page, "Rotate the signing key?")
    await check(page, "confirm-rotate-key", size)
    await confirm(page, "Rotate key")
    await notice(page, "New signing key added.")
    await page.get_by_role("link", name="Rotate now (compromise)").click()
    await confirm(page, "Rotate key now")
    await notice(page, "New signing key added.")
    await check(page, "keys-rotated", size)
    assert await page.locator(".badge-key-published, .badge-key-pending").count() >= 1

    # The audit trail names the operator for each; the activity view shows them.
    await page.goto(site.url + "/activity?event=grant.revoked")
    await page.get_by_role("cell", name="console:olivia").first.wait_for()
    await check(page, "activity-operator-actions", size)

    # Sign out: back to the sign-in page, and the console is closed to this browser.
    await page.get_by_role("button", name="Sign out").click()
    await page.get_by_role("heading", name="Operator sign-in").wait_for()
    await page.goto(site.url + "/clients")
    assert page.url.startswith(site.url + "/sign-in")
    acted = {e["event"] for e in site.events() if e.get("actor") == "console:olivia"}
    assert {"grant.revoked", "consent.revoked", "tokens.revoked", "user.offboarded",
            "client.secret_rotated", "client.disabled", "client.pruned", "key.rotated",
            "console.stepped_up", "console.signed_out"} <= acted  # fmt: skip


@pytest.mark.parametrize("size", list(SIZES))
async def test_an_incident_from_the_keyboard_alone(
    window: Window, seeded: tuple[ConsoleSite, Seeded], size: str
) -> None:
    """A leaked refresh token: sign in, find the user, revoke the grant, step up and
    confirm, with Tab, typing and Enter only; focus follows the reading order."""
    site, data = seeded
    page = await window(size)
    await page.goto(site.url + "/sign-in")
    # The username field has focus on arrival (autofocus lands after load: wait for it,
    # don't race it); the rest is Tab and typing.
    await focus_on(page, "username")
    await page.keyboard.type("olivia")
    await page.keyboard.press("Tab")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Tab")
    await page.keyboard.type(site.code())
    await page.keyboard.press("Enter")
    await page.wait_for_url(site.url + "/")
    assert_reading_order(await tab_stops(page))

    await page.goto(site.url + "/users")
    stops = await tab_stops(page)
    assert_reading_order(stops)
    await page.reload()
    await tab_to(page, "alice")
    await page.keyboard.press("Enter")
    await page.get_by_role("heading", level=1, name="Alice").wait_for()
    assert_reading_order(await tab_stops(page))
    await page.reload()
    site.clock.advance(STEP_UP + 1)
    await tab_to(page, f"Revoke grant {data.families[0]}")
    await page.keyboard.press("Enter")
    await page.get_by_role("heading", name="Confirm it's you").wait_for()
    await focus_on(page, "password")  # focused on arrival
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Tab")
    await page.keyboard.type(site.code())
    await page.keyboard.press("Enter")
    await page.get_by_role("heading", name="Revoke this grant?").wait_for()
    assert_reading_order(await tab_stops(page))
    await page.reload()
    await tab_to(page, "Revoke grant")
    await shot(page, f"console-keyboard-focus-{size}", full_page=False)
    await page.keyboard.press("Enter")
    await notice(page, "Grant revoked.")
    family = await site.server.store.grants.family(data.families[0])
    assert family is not None and family.revoked_at is not None


async def focus_on(page: Page, element_id: str) -> None:
    await page.wait_for_function(
        "id => document.activeElement && document.activeElement.id === id", arg=element_id
    )


async def tab_to(page: Page, name: str) -> None:
    """Press Tab until the focused control is ``name`` (its label or text)."""
    for _ in range(80):
        await page.keyboard.press("Tab")
        focused = await page.evaluate(
            "() => { const e = document.activeElement;"
            " return e ? (e.getAttribute('aria-label') || e.textContent.trim()) : ''; }"
        )
        if focused == name:
            return
    raise AssertionError(f"Tab never reached {name!r}")
