"""The account and consent pages in a real browser at a phone's width (390 px) and a
laptop's window (1280x800): they fit, what matters is in view, Tab follows the reading
order. Screenshots land in test-artifacts/screenshots/ named by page and size.

The contexts run JavaScript only so the test can measure boxes (``page.evaluate``); the
pages carry none (their CSP forbids it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Locator, Page
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from mcpward._clock import FrozenClock
from mcpward._secrets import new_id
from mcpward.server.pages._display import moment
from mcpward.storage.records import ConsentRecord
from tests.conftest import serve
from tests.pages.browser import chromium, shot
from tests.pages.layout import (
    NARROW_TABLE,
    SIZES,
    assert_fits_across,
    assert_in_view,
    assert_nothing_inline,
    assert_reading_order,
    tab_stops,
)
from tests.pages.support import (
    PASSWORD,
    REDIRECT,
    Browserish,
    Site,
    authorize_params,
    authorize_path,
    new_verifier,
    redeem,
    start_site,
)
from tests.services import free_port

pytestmark = pytest.mark.browser

DAY = 86400.0
# A fixed start, so the dates on the page (and in the screenshots) are known.
T0 = datetime(2026, 10, 5, 9, 30, tzinfo=UTC).timestamp()
REGISTRATIONS = 32  # the same app registering again and again (DCR from mcp-remote)
WITHDRAWN = 17  # the one the test withdraws: in the middle of the list
CURSOR_REDIRECT = "cursor://anysphere.cursor-retrieval/oauth/user-orders/callback"
CIMD_ID = "https://assistant.example.org/oauth/clients/orders-assistant/client-metadata.json"
ALL_SCOPES = "orders.read orders.write refund.admin"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as b:
        yield b


Window = Callable[[str], Awaitable[Page]]


@pytest.fixture
async def window(browser: Browser) -> AsyncIterator[Window]:
    """Opens a page in a fresh browser context of the size named; closed after the test."""
    contexts: list[BrowserContext] = []

    async def open_window(size: str) -> Page:
        context = await browser.new_context(viewport={**SIZES, **NARROW_TABLE}[size])
        contexts.append(context)
        return await context.new_page()

    try:
        yield open_window
    finally:
        for context in contexts:
            await context.close()


async def sign_in(page: Page) -> None:
    await page.get_by_label("Username").fill("alice")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()


async def approve_and_refresh(
    site: Site, client_id: str, redirect_uri: str, refresh_after: float
) -> None:
    """A real grant: sign in, approve (remembered), redeem the code, and refresh the
    tokens ``refresh_after`` seconds later."""
    assert isinstance(site.clock, FrozenClock)
    verifier = new_verifier()
    params = authorize_params(site, verifier, client_id=client_id, redirect_uri=redirect_uri)
    async with Browserish(site) as b:
        code = await b.code_for(params)
    tokens = await redeem(site, code, verifier, client_id=client_id, redirect_uri=redirect_uri)
    assert tokens.status_code == 200, tokens.text
    site.clock.advance(refresh_after)
    async with httpx.AsyncClient(base_url=site.url) as http:
        refreshed = await http.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens.json()["refresh_token"],
                "client_id": client_id,
            },
        )
    assert refreshed.status_code == 200, refreshed.text


@dataclass
class Approvals:
    user_id: str
    registrations: list[str]  # client ids of the same app, oldest first
    withdrawn: str
    count: int


@pytest.fixture
async def account_site(tmp_path: Path) -> AsyncIterator[tuple[Site, Approvals]]:
    """Alice approved 35 applications over two months: 32 registrations of "Claude"
    (one a day, each with its own loopback port), Cursor (a custom-scheme redirect), a
    metadata-document client with a long client id, and the Orders CLI. Two of them
    went through real sign-in, code and refresh, so they have a last use."""
    clock = FrozenClock(T0)
    async with start_site(tmp_path, clock=clock) as site:
        alice = await site.add_user()
        ids = []
        for i in range(REGISTRATIONS):
            clock.now = T0 + i * DAY
            client_id = new_id()
            redirect_uri = f"http://127.0.0.1:{20000 + i}/oauth/callback"
            await site.add_client(
                client_id, name="Claude", redirect_uris=(redirect_uri,), source="dcr"
            )
            if i == WITHDRAWN:
                await approve_and_refresh(site, client_id, redirect_uri, refresh_after=3 * DAY)
            else:
                await site.server.store.users.put_consent(
                    ConsentRecord(alice.id, client_id, site.resource, "orders.read", clock.now)
                )
            ids.append(client_id)
        clock.now = T0 + 40 * DAY
        await site.add_client("cursor-1", name="Cursor", redirect_uris=(CURSOR_REDIRECT,))
        await site.server.store.users.put_consent(
            ConsentRecord(alice.id, "cursor-1", site.resource, ALL_SCOPES, clock.now)
        )
        await site.add_client(
            CIMD_ID,
            name="Orders Assistant",
            redirect_uris=("http://127.0.0.1:41111/cb",),
            source="cimd",
        )
        await site.server.store.users.put_consent(
            ConsentRecord(alice.id, CIMD_ID, site.resource, "orders.read", clock.now + 60)
        )
        clock.now = T0 + 45 * DAY
        await site.add_client()
        await approve_and_refresh(site, "cli", REDIRECT, refresh_after=2 * DAY)
        yield site, Approvals(alice.id, ids, ids[WITHDRAWN], REGISTRATIONS + 3)


async def open_account(window: Window, site: Site, size: str) -> Page:
    page = await window(size)
    await page.goto(site.url + "/account")
    await sign_in(page)
    await page.get_by_role("heading", name="Applications you approved").wait_for()
    return page


def row_of(page: Page, client_id: str) -> Locator:
    return page.locator("tbody tr").filter(has=page.locator(f'code[title="{client_id}"]'))


@pytest.mark.parametrize("size", [*SIZES, *NARROW_TABLE])
async def test_account_page_fits_and_tells_registrations_apart(
    window: Window, account_site: tuple[Site, Approvals], size: str
) -> None:
    site, approvals = account_site
    page = await open_account(window, site, size)
    await assert_fits_across(page)
    await assert_nothing_inline(page)
    await shot(page, f"account-{size}")
    await shot(page, f"account-{size}-window", full_page=False)
    rows = page.locator("tbody tr")
    assert await rows.count() == approvals.count

    # Newest first, by the date of approval.
    approved = await page.locator(".cell-approved time").evaluate_all(
        "els => els.map(e => e.getAttribute('datetime'))"
    )
    assert len(approved) == approvals.count and approved == sorted(approved, reverse=True)
    first = rows.first
    assert await first.locator(".app-name").inner_text() == "Orders CLI"
    # The CLI approved on day 45 and refreshed its tokens two days later.
    approved_at, used_at = moment(T0 + 45 * DAY), moment(T0 + 47 * DAY)
    assert await first.locator(".cell-approved time").inner_text() == approved_at.short
    assert await first.locator(".cell-approved time").get_attribute("title") == approved_at.full
    assert (
        await first.locator(".cell-last-used time").inner_text() == used_at.short == "21 Nov 2026"
    )

    # Each registration of the same app: its own client id, port and last use.
    withdrawn = row_of(page, approvals.withdrawn)
    assert "127.0.0.1:20017" in await withdrawn.inner_text()
    assert (
        await withdrawn.locator(".cell-last-used time").inner_text() == moment(T0 + 20 * DAY).short
    )
    never = row_of(page, approvals.registrations[3]).locator(".cell-last-used .cell-value")
    assert await never.inner_text() == "never"

    # A custom scheme keeps its scheme, and both kinds of local redirect say so.
    cursor = await row_of(page, "cursor-1").inner_text()
    assert "cursor://anysphere.cursor-retrieval" in cursor and "(an app on this computer)" in cursor
    assert "(an app on this computer)" in await withdrawn.inner_text()

    # A long client id is cut short on screen but is all in the page and the tooltip.
    long_id = page.locator(f'code[title="{CIMD_ID}"]')
    assert await long_id.text_content() == CIMD_ID
    assert await long_id.evaluate("e => e.scrollWidth > e.clientWidth")

    if not size.startswith("phone"):
        # Each date on one line: one box per <time>, each date cell one line high.
        lines = await page.locator("tbody time").evaluate_all(
            "els => els.map(e => e.getClientRects().length)"
        )
        assert len(lines) > approvals.count and set(lines) == {1}
        over = await page.locator("tbody .cell-date .cell-value").evaluate_all(
            """els => els.filter(e => e.getBoundingClientRect().height
                > 1.5 * parseFloat(getComputedStyle(e).lineHeight)).length"""
        )
        assert over == 0


@pytest.mark.parametrize("size", list(SIZES))
async def test_account_withdraws_exactly_the_row_asked_for(
    window: Window, account_site: tuple[Site, Approvals], size: str
) -> None:
    site, approvals = account_site
    page = await open_account(window, site, size)
    stops = await tab_stops(page)
    assert_reading_order(stops)
    rows = await page.locator("tbody tr .cell-action button").evaluate_all(
        "els => els.map(e => e.getAttribute('aria-label'))"
    )
    assert [s.name for s in stops] == ["Skip to main content", "Sign out", *rows]
    await row_of(page, approvals.withdrawn).get_by_role("button", name="Withdraw").click()
    await page.get_by_text("Access withdrawn").wait_for()
    await assert_fits_across(page)
    assert await page.locator("tbody tr").count() == approvals.count - 1
    assert await row_of(page, approvals.withdrawn).count() == 0

    users, grants = site.server.store.users, site.server.store.grants
    left = {c.client_id for c in await users.consents_of(approvals.user_id)}
    assert approvals.withdrawn not in left and len(left) == approvals.count - 1
    families = await grants.families_of(subject=approvals.user_id)
    revoked = {f.client_id for f in families if f.revoked_at is not None}
    assert revoked == {approvals.withdrawn}
    assert [e["client_id"] for e in site.events("consent.revoked")] == [approvals.withdrawn]


# -- the consent page -------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentCase:
    client_id: str
    redirect_uri: str
    shown: str  # what "Sends you back to" says


CASES = {
    # Registered by the administrator, loopback redirect.
    "preregistered": ConsentCase("cli", REDIRECT, "127.0.0.1:33418"),
    # Cursor's custom scheme, registered dynamically (unverified: a warning more).
    "custom-scheme": ConsentCase(
        "cursor-1", CURSOR_REDIRECT, "cursor://anysphere.cursor-retrieval"
    ),
    # The tallest: a metadata-document client (a "Published by" row) and the warning.
    "metadata-document": ConsentCase(CIMD_ID, "http://127.0.0.1:41111/cb", "127.0.0.1:41111"),
}


async def open_consent(
    window: Window, site: Site, case: ConsentCase, size: str, redirect_uri: str = ""
) -> Page:
    if case.client_id == "cursor-1":
        await site.add_client(
            "cursor-1", name="Cursor", redirect_uris=(CURSOR_REDIRECT,), source="dcr"
        )
    if case.client_id == CIMD_ID:
        await site.add_client(
            CIMD_ID, name="Orders Assistant", redirect_uris=(case.redirect_uri,), source="cimd"
        )
    page = await window(size)
    params = authorize_params(
        site,
        new_verifier(),
        client_id=case.client_id,
        redirect_uri=redirect_uri or case.redirect_uri,
        scope=ALL_SCOPES,
    )
    await page.goto(site.url + authorize_path(params))
    await sign_in(page)
    await page.get_by_role("button", name="Allow access").wait_for()
    return page


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("case", list(CASES))
async def test_consent_decision_is_in_view(
    window: Window, site: Site, case: str, size: str
) -> None:
    page = await open_consent(window, site, CASES[case], size)
    # What the window shows (a full-page capture would misplace the sticky decision bar).
    await shot(page, f"consent-{case}-{size}", full_page=False)
    await assert_fits_across(page)
    await assert_nothing_inline(page)
    # Every permission and its tools are listed, and still the decision is in view.
    for title in ("Read your orders", "Change your orders", "Issue refunds"):
        assert await page.get_by_label(title).is_checked()
    assert await page.locator(".scope-tools li").count() == 4
    await assert_in_view(page, page.get_by_role("button", name="Allow access"))
    await assert_in_view(page, page.get_by_role("button", name="Deny"))
    await assert_in_view(page, page.get_by_label("Remember this decision"))
    sends_back = page.locator(".facts div", has_text="Sends you back to")
    assert await sends_back.locator("code").inner_text() == CASES[case].shown
    assert "(an app on this computer)" in await sends_back.inner_text()

    # Scrolled to the end, the bar rests below the last of the content, hiding none of it.
    await page.keyboard.press("End")
    await page.wait_for_function(
        "() => scrollY + innerHeight >= document.documentElement.scrollHeight - 1"
    )
    await assert_in_view(page, page.get_by_text("Available without any permission"))
    await assert_in_view(page, page.get_by_role("button", name="Allow access"))
    await shot(page, f"consent-{case}-{size}-scrolled-to-end", full_page=False)


@pytest.mark.parametrize("size", list(SIZES))
async def test_consent_keyboard_order_and_allow(window: Window, site: Site, size: str) -> None:
    landed: list[str] = []

    async def listener(request: Request) -> HTMLResponse:
        landed.append(str(request.url))
        return HTMLResponse("<!doctype html><title>Done</title><p>You can return to the app.")

    # The native client's own loopback listener, on a port of its choosing (RFC 8252 §7.3).
    port = free_port()
    app = Starlette(routes=[Route("/callback", listener)])
    async with serve(app, port):
        page = await open_consent(
            window, site, CASES["preregistered"], size, f"http://127.0.0.1:{port}/callback"
        )
        await check_keyboard_and_allow(page, port)
    assert landed and "code=" in landed[0]


async def check_keyboard_and_allow(page: Page, port: int) -> None:
    stops = await tab_stops(page)
    assert_reading_order(stops)
    assert [s.name for s in stops] == [
        "Skip to main content",
        "Not you? Sign out",
        "scope-1",
        "scope-2",
        "scope-3",
        "remember",
        "Deny",
        "Allow access",
    ]
    # The focused Allow button, pressed from the keyboard.
    await page.get_by_role("button", name="Allow access").focus()
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"http://127.0.0.1:{port}/callback?**")
