"""The person at the browser: Debian chromium through Playwright signs the demo user in on
mcpward's real pages and consents to exactly the scopes a cell asks for, then follows the
redirect to the client's own loopback callback, wherever that client listens."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from playwright.async_api import Browser, BrowserContext, Page

from tests.pages.browser import shot


@dataclass
class Authorization:
    url: str
    client_id: str
    scope_requested: str
    consent_shown: bool = False
    landed: str = ""  # where the browser was sent back to (origin only: the URL holds the code)


@dataclass
class Person:
    """One client's user: one browser profile (so a second authorization finds the user
    still signed in, as it would in their own browser), and the scopes they will allow."""

    browser: Browser
    issuer: str
    username: str
    password: str
    label: str
    allow: Collection[str] = ("orders.read",)
    authorizations: list[Authorization] = field(default_factory=list)
    _context: BrowserContext | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    errors: list[BaseException] = field(default_factory=list)

    def open(self, url: str) -> None:
        """What the client's "open the browser" does: hand the URL over and return at once.
        The sign-in runs as a task; `settled()` waits for it."""
        task = asyncio.get_running_loop().create_task(self.authorize(url))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.errors.append(task.exception())  # type: ignore[arg-type]

    async def settled(self) -> None:
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.errors:
            raise AssertionError(f"the browser sign-in failed: {self.errors[0]!r}")

    async def context(self) -> BrowserContext:
        if self._context is None:
            self._context = await self.browser.new_context(viewport={"width": 1280, "height": 800})
        return self._context

    async def authorize(self, url: str) -> None:
        """A new tab on `url` (the client's authorization request), then sign in and consent."""
        assert url.startswith(self.issuer + "/authorize?"), url
        page = await (await self.context()).new_page()
        try:
            await page.goto(url)
            await self.sign_in_and_consent(page, url)
        finally:
            await page.close()

    async def sign_in_and_consent(self, page: Page, url: str) -> None:
        """On `page`, which the client sent to `url`: sign in if asked, consent to `allow`,
        and follow the redirect back to the client."""
        query = parse_qs(urlsplit(url).query)
        record = Authorization(
            url=url,
            client_id=query.get("client_id", [""])[0],
            scope_requested=query.get("scope", [""])[0],
        )
        self.authorizations.append(record)
        if page.url.startswith(self.issuer) and await page.get_by_label("Username").count():
            await page.get_by_label("Username").fill(self.username)
            await page.get_by_label("Password").fill(self.password)
            async with page.expect_navigation():
                await page.get_by_role("button", name="Sign in").click()
        if page.url.startswith(self.issuer):
            record.consent_shown = True
            for box in await page.locator('input[name="scope"]').all():
                await box.set_checked(await box.get_attribute("value") in self.allow)
            await shot(page, f"interop-{self.label}-consent-{len(self.authorizations)}")
            async with page.expect_navigation():
                await page.get_by_role("button", name="Allow access").click()
        assert not page.url.startswith(self.issuer), f"still at {page.url}"
        record.landed = urlsplit(page.url).netloc

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._context is not None:
            await self._context.close()


# What $BROWSER runs (xdg-open calls it with the URL): append the URL to a file the test reads.
OPENER = '#!/bin/sh\nprintf "%s\\n" "$1" >> "$MCPWARD_INTEROP_OPENED"\n'


class Opened:
    """Watches the file the $BROWSER script appends URLs to, and opens each in the
    person's browser."""

    def __init__(self, workdir: Path, person: Person) -> None:
        self.path = workdir / "opened.txt"
        self.path.touch()
        self.script = workdir / "open-browser.sh"
        self.script.write_text(OPENER)
        self.script.chmod(self.script.stat().st_mode | stat.S_IXUSR)
        self.person = person
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        done = 0
        while True:
            lines = self.path.read_text().splitlines()
            for url in lines[done:]:
                self.person.open(url)
            done = len(lines)
            await asyncio.sleep(0.1)

    def env(self) -> dict[str, str]:
        return {"BROWSER": str(self.script), "MCPWARD_INTEROP_OPENED": str(self.path)}

    def aclose(self) -> None:
        self._task.cancel()
