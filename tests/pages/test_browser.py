"""The pages in a real browser, with JavaScript switched off: they must work without it.
Screenshots land in test-artifacts/screenshots/."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route

from mcpward._clock import FrozenClock
from tests.pages.browser import chromium, shot
from tests.pages.support import (
    PASSWORD,
    REDIRECT,
    Site,
    authorize_params,
    authorize_path,
    new_verifier,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as b:
        yield b


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(
        java_script_enabled=False, viewport={"width": 1100, "height": 820}
    )
    try:
        yield ctx
    finally:
        await ctx.close()


class Callback:
    """Stands in for the client's loopback listener: records where the browser lands."""

    def __init__(self) -> None:
        self.url: str | None = None

    async def __call__(self, route: Route) -> None:
        self.url = route.request.url
        await route.fulfill(
            status=200,
            content_type="text/html",
            body="<!doctype html><title>Done</title><h1>You can return to the app.</h1>",
        )


async def capture(page: Page) -> Callback:
    callback = Callback()
    await page.route("http://127.0.0.1:33418/**", callback)
    return callback


async def sign_in(page: Page, username: str = "alice", password: str = PASSWORD) -> None:
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()


async def test_sign_in_and_approve(site: Site, context: BrowserContext) -> None:
    page = await context.new_page()
    callback = await capture(page)
    params = authorize_params(site, new_verifier(), scope="orders.read orders.write refund.admin")
    await page.goto(site.url + authorize_path(params))
    assert await page.title() == "Sign in · mcpward"
    await shot(page, "01-login")
    await sign_in(page, password="wrong password 123")
    await page.get_by_role("alert").wait_for()
    assert "incorrect" in (await page.get_by_role("alert").inner_text())
    await shot(page, "02-login-wrong-password")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("heading", name="Orders CLI wants to access Orders").wait_for()
    await shot(page, "03-consent")
    # Each scope is a labelled checkbox.
    assert await page.get_by_label("Issue refunds").is_checked()
    await page.get_by_role("button", name="Allow access").click()
    await page.wait_for_url("http://127.0.0.1:33418/**")
    assert callback.url is not None, page.url
    location = httpx.URL(callback.url)
    assert location.params["state"] == params["state"]
    assert location.params["iss"] == site.issuer
    assert location.params["code"]


async def test_deny(site: Site, context: BrowserContext) -> None:
    page = await context.new_page()
    callback = await capture(page)
    params = authorize_params(site, new_verifier())
    await page.goto(site.url + authorize_path(params))
    await sign_in(page)
    await page.get_by_role("button", name="Deny").click()
    await page.wait_for_url("http://127.0.0.1:33418/**")
    assert callback.url is not None
    assert httpx.URL(callback.url).params["error"] == "access_denied"


async def test_lockout_message(site: Site, context: BrowserContext) -> None:
    page = await context.new_page()
    await page.goto(site.url + authorize_path(authorize_params(site, new_verifier())))
    for _ in range(5):
        await sign_in(page, password="wrong password 123")
    alert = await page.get_by_role("alert").inner_text()
    assert "Too many failed sign-in attempts" in alert
    await shot(page, "04-login-locked")


async def test_expired_session_signs_in_again(site: Site, context: BrowserContext) -> None:
    page = await context.new_page()
    await page.goto(site.url + authorize_path(authorize_params(site, new_verifier())))
    await sign_in(page)
    await page.get_by_role("heading", name="Orders CLI wants to access Orders").wait_for()
    assert isinstance(site.clock, FrozenClock)
    site.clock.advance(8 * 3600 + 5)
    await page.goto(site.url + authorize_path(authorize_params(site, new_verifier())))
    await page.get_by_label("Password").wait_for()


async def test_bad_redirect_is_an_error_page(site: Site, context: BrowserContext) -> None:
    page = await context.new_page()
    params = authorize_params(
        site, new_verifier(), client_id="web", redirect_uri="https://evil.example/cb"
    )
    response = await page.goto(site.url + authorize_path(params))
    assert response is not None and response.status == 400
    assert page.url.startswith(site.url + "/authorize?")
    await page.get_by_role("heading", name="This sign-in link is not valid").wait_for()
    await shot(page, "05-error-unregistered-redirect")


async def test_unverified_client_consent_and_account_page(
    site: Site, context: BrowserContext
) -> None:
    page = await context.new_page()
    await page.route("https://app.example.com/**", Callback())
    params = authorize_params(
        site,
        new_verifier(),
        client_id="web",
        redirect_uri="https://app.example.com/oauth/callback?tenant=7",
    )
    await page.goto(site.url + authorize_path(params))
    await sign_in(page)
    await page.get_by_text("Not verified by your administrator").wait_for()
    await shot(page, "06-consent-unverified-client")
    await page.get_by_role("button", name="Allow access").click()
    await page.wait_for_url("https://app.example.com/**")
    await page.goto(site.url + "/account")
    await page.get_by_role("heading", name="Applications you approved").wait_for()
    await shot(page, "07-account")
    await page.get_by_role("button", name="Withdraw access for Orders Web (web) to Orders").click()
    await page.get_by_text("Access withdrawn").wait_for()
    await page.get_by_role("button", name="Sign out").click()
    await page.get_by_role("heading", name="Signed out").wait_for()
    await shot(page, "08-signed-out")


async def test_keyboard_focus_order(site: Site, browser: Browser) -> None:
    ctx = await browser.new_context()  # with JavaScript, for document.activeElement
    try:
        page = await ctx.new_page()
        await page.goto(site.url + authorize_path(authorize_params(site, new_verifier())))
        # Autofocus lands after the load event, at the browser's next rendering step: wait
        # for it, or the first Tab may move focus from the page itself instead.
        await page.wait_for_function("() => document.activeElement?.id === 'username'")
        order = []
        for _ in range(3):
            order.append(
                await page.evaluate(
                    "document.activeElement.id || document.activeElement.textContent.trim()"
                )
            )
            await page.keyboard.press("Tab")
        # Focus starts in the username field (autofocus), then follows the visual order.
        assert order == ["username", "password", "Sign in"]
    finally:
        await ctx.close()


async def test_totp_second_factor(site: Site, context: BrowserContext) -> None:
    from mcpward.server._crypto import DataKey
    from mcpward.server.pages import _totp

    user = await site.add_user("bob")
    secret = _totp.new_secret()
    key = DataKey(site.server.settings.resolved_data_key())
    await site.server.store.users.set_totp_secret(
        user.id, _totp.encrypt_secret(key, user.id, secret)
    )
    page = await context.new_page()
    callback = await capture(page)
    await page.goto(site.url + authorize_path(authorize_params(site, new_verifier())))
    await sign_in(page, "bob")
    await page.get_by_label("Verification code").wait_for()
    await shot(page, "09-totp")
    await page.get_by_label("Verification code").fill("000000")
    await page.get_by_role("button", name="Verify").click()
    await page.get_by_role("alert").wait_for()
    await page.get_by_label("Verification code").fill(_totp.current_code(secret, site.clock()))
    await page.get_by_role("button", name="Verify").click()
    await page.get_by_role("button", name="Allow access").click()
    await page.wait_for_url("http://127.0.0.1:33418/**")
    assert callback.url is not None and "code=" in callback.url
    assert REDIRECT in callback.url
