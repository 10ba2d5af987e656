"""The sign-in and consent flow over real HTTP: what a browser does, form by form."""

from __future__ import annotations

import html
import re

import httpx

from mcpward._clock import FrozenClock
from mcpward.storage.records import ResourceRecord
from tests.pages.support import (
    PASSWORD,
    Browserish,
    Site,
    authorize_params,
    authorize_path,
    field,
    new_verifier,
    redeem,
)


async def test_sign_in_consent_code_token_and_refresh(site: Site) -> None:
    verifier = new_verifier()
    params = authorize_params(site, verifier)
    async with Browserish(site) as b:
        page = await b.consent_page(params)
        # The consent page names the client, where it sends you, each scope and its tools.
        assert "Orders CLI" in page.text
        assert "127.0.0.1:33418" in page.text
        assert "Read your orders" in page.text and "search_orders" in page.text
        assert "Change your orders" in page.text and "refund_order" in page.text
        assert "also needs refund.admin" in page.text
        done = await b.approve(page)
    assert done.status_code == 303
    location = httpx.URL(done.headers["location"])
    assert str(location).startswith("http://127.0.0.1:33418/callback?")
    assert location.params["state"] == params["state"]
    assert location.params["iss"] == site.issuer
    token = await redeem(site, location.params["code"], verifier)
    assert token.status_code == 200, token.text
    body = token.json()
    assert set(body["scope"].split()) == {"orders.read", "orders.write"}
    async with httpx.AsyncClient(base_url=site.url) as http:
        refreshed = await http.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": body["refresh_token"],
                "client_id": "cli",
            },
        )
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["refresh_token"] != body["refresh_token"]
    names = [e["event"] for e in site.events()]
    assert "login.succeeded" in names and "consent.granted" in names


async def test_user_can_narrow_the_scopes(site: Site) -> None:
    verifier = new_verifier()
    params = authorize_params(site, verifier)
    async with Browserish(site) as b:
        page = await b.consent_page(params)
        done = await b.approve(page, scopes=["orders.read"])
    code = httpx.URL(done.headers["location"]).params["code"]
    token = await redeem(site, code, verifier)
    assert token.json()["scope"] == "orders.read"


async def test_deny_redirects_access_denied_with_state_and_iss(site: Site) -> None:
    params = authorize_params(site, new_verifier())
    async with Browserish(site) as b:
        page = await b.consent_page(params)
        done = await b.http.post(
            "/consent",
            data={
                "csrf": field(page.text, "csrf"),
                "request": field(page.text, "request"),
                "decision": "deny",
            },
        )
    assert done.status_code == 303
    location = httpx.URL(done.headers["location"])
    assert location.params["error"] == "access_denied"
    assert location.params["state"] == params["state"]
    assert location.params["iss"] == site.issuer
    assert "code" not in location.params
    assert site.events("consent.denied")


async def test_remembered_consent_skips_the_page_until_more_is_asked(site: Site) -> None:
    async with Browserish(site) as b:
        await b.code_for(authorize_params(site, new_verifier()))
        again = await b.http.get(authorize_path(authorize_params(site, new_verifier())))
        assert again.status_code == 302
        assert "code=" in again.headers["location"]
        more = authorize_params(site, new_verifier(), scope="orders.read refund.admin")
        page = await b.http.get(authorize_path(more))
        assert page.status_code == 200 and "wants to access" in page.text
        forced = await b.http.get(
            authorize_path(authorize_params(site, new_verifier(), prompt="consent"))
        )
        assert forced.status_code == 200 and "wants to access" in forced.text
    assert site.events("consent.remembered")


async def test_wrong_password_is_refused_without_saying_which_part(site: Site) -> None:
    params = authorize_params(site, new_verifier())
    async with Browserish(site) as b:
        wrong = await b.sign_in(params, password="not the password at all")
        unknown = await b.sign_in(params, username="mallory")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "The username or password is incorrect." in response.text
        assert "not the password" not in response.text
    failures = site.events("login.failed")
    assert len(failures) == 2
    assert all("not the password" not in str(e) for e in site.audit.lines)


async def test_lockout_after_repeated_failures(site: Site) -> None:
    params = authorize_params(site, new_verifier())
    async with Browserish(site) as b:
        for _ in range(4):
            assert (await b.sign_in(params, password="wrong password 123")).status_code == 401
        locked = await b.sign_in(params, password="wrong password 123")
        assert locked.status_code == 429
        assert "Too many failed sign-in attempts" in locked.text
        assert "Try again in 15 minutes" in locked.text
        # Even the right password is refused while locked ...
        still = await b.sign_in(params)
        assert still.status_code == 429
        assert int(still.headers["retry-after"]) > 0
        # ... and accepted once the lockout is over.
        assert isinstance(site.clock, FrozenClock)
        site.clock.advance(15 * 60 + 1)
        ok = await b.sign_in(params)
        assert ok.status_code == 303
    assert site.events("login.locked")


async def test_expired_session_asks_to_sign_in_again(site: Site) -> None:
    async with Browserish(site) as b:
        await b.code_for(authorize_params(site, new_verifier()))
        assert isinstance(site.clock, FrozenClock)
        site.clock.advance(8 * 3600 + 1)
        page = await b.http.get(authorize_path(authorize_params(site, new_verifier())))
        assert page.status_code == 200
        assert 'name="password"' in page.text


async def test_prompt_none_and_prompt_login(site: Site) -> None:
    async with Browserish(site) as b:
        none = await b.http.get(
            authorize_path(authorize_params(site, new_verifier(), prompt="none"))
        )
        assert none.status_code == 302
        assert httpx.URL(none.headers["location"]).params["error"] == "login_required"
        await b.code_for(authorize_params(site, new_verifier()))
        relogin = authorize_params(site, new_verifier(), prompt="login")
        page = await b.http.get(authorize_path(relogin))
        assert 'name="password"' in page.text
        login = await b.sign_in(relogin)
        assert login.status_code == 303 and "prompt" not in login.headers["location"]
        after = await b.http.get(login.headers["location"])
        assert after.status_code == 302 and "code=" in after.headers["location"]


async def test_disabled_user_cannot_sign_in_and_loses_the_session(site: Site) -> None:
    user = await site.server.store.users.by_username("alice")
    assert user is not None
    async with Browserish(site) as b:
        await b.code_for(authorize_params(site, new_verifier()))
        await site.server.store.users.set_disabled(user.id, site.clock())
        page = await b.http.get(authorize_path(authorize_params(site, new_verifier())))
        assert 'name="password"' in page.text
        refused = await b.sign_in(authorize_params(site, new_verifier()))
        assert refused.status_code == 401


async def test_logout_ends_the_session(site: Site) -> None:
    async with Browserish(site) as b:
        await b.code_for(authorize_params(site, new_verifier()))
        form = await b.http.get("/logout")
        assert "Sign out" in form.text
        out = await b.http.post("/logout", data={"csrf": field(form.text, "csrf")})
        assert out.status_code == 200 and "signed out" in out.text
        page = await b.http.get(authorize_path(authorize_params(site, new_verifier())))
        assert 'name="password"' in page.text
    assert site.events("logout")


async def test_account_page_withdraws_consent_and_tokens(site: Site) -> None:
    verifier = new_verifier()
    async with Browserish(site) as b:
        code = await b.code_for(authorize_params(site, verifier))
        tokens = (await redeem(site, code, verifier)).json()
        account = await b.http.get("/account")
        assert "Orders CLI" in account.text and "orders.write" in account.text
        out = await b.http.post(
            "/account/revoke",
            data={
                "csrf": field(account.text, "csrf"),
                "client_id": field(account.text, "client_id"),
                "resource": field(account.text, "resource"),
            },
        )
        assert out.status_code == 303
        page = await b.http.get(authorize_path(authorize_params(site, new_verifier())))
        assert "wants to access" in page.text
    async with httpx.AsyncClient(base_url=site.url) as http:
        refreshed = await http.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": "cli",
            },
        )
    assert refreshed.status_code == 400
    assert site.events("consent.revoked")


async def test_withdrawing_one_server_keeps_the_same_apps_other_server(site: Site) -> None:
    other = "http://127.0.0.1:9/other-mcp"
    await site.server.register_resource(
        ResourceRecord(uri=other, name="Billing", scopes={"orders.read": "Read invoices"})
    )
    async with Browserish(site) as b:
        for resource in (site.resource, other):
            verifier = new_verifier()
            params = authorize_params(site, verifier, scope="orders.read", resource=resource)
            code = await b.code_for(params)
            token = await redeem(site, code, verifier, resource=resource)
            assert token.status_code == 200, token.text
        account = await b.http.get("/account")
        # One row per application and server, each with its own withdraw form.
        assert account.text.count('name="resource" value=') == 2
        assert "Orders" in account.text and "Billing" in account.text
        out = await b.http.post(
            "/account/revoke",
            data={"csrf": field(account.text, "csrf"), "client_id": "cli", "resource": other},
        )
        assert out.status_code == 303
    user = await site.server.store.users.by_username("alice")
    assert user is not None
    left = await site.server.store.users.consents_of(user.id)
    assert [(c.client_id, c.resource) for c in left] == [("cli", site.resource)]
    families = await site.server.store.grants.families_of(subject=user.id)
    assert {f.resource: f.revoked_at is not None for f in families} == {
        site.resource: False,
        other: True,
    }


async def test_pages_carry_security_headers(site: Site) -> None:
    async with httpx.AsyncClient(base_url=site.url) as http:
        page = await http.get(authorize_path(authorize_params(site, new_verifier())))
        css = await http.get("/static/mcpward.css")
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "default-src 'none'" in csp
    assert "script-src" not in csp  # nothing may run: default-src 'none'
    assert "form-action 'self' http://127.0.0.1:33418" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert "<script" not in page.text
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]


async def test_password_is_never_in_the_audit_trail(site: Site) -> None:
    async with Browserish(site) as b:
        await b.code_for(authorize_params(site, new_verifier()))
        await b.sign_in(
            authorize_params(site, new_verifier(), prompt="login"), password=PASSWORD + "x"
        )
    trail = "\n".join(site.audit.lines)
    assert PASSWORD not in trail
    assert "mcpw_ac_" not in trail


async def test_cancel_before_signing_in_tells_the_client(site: Site) -> None:
    params = authorize_params(site, new_verifier(), login_hint="alice")
    async with Browserish(site) as b:
        page = await b.http.get(authorize_path(params))
        assert 'value="alice"' in page.text  # login_hint fills in the username
        cancel = re.search(r'href="(/authorize/cancel\?[^"]+)"', page.text)
        assert cancel is not None
        done = await b.http.get(html.unescape(cancel.group(1)))
    assert done.status_code == 303
    location = httpx.URL(done.headers["location"])
    assert str(location).startswith("http://127.0.0.1:33418/callback?")
    assert location.params["error"] == "access_denied"
    assert location.params["state"] == params["state"]
    assert location.params["iss"] == site.issuer
    assert site.events("authorize.cancelled")


async def test_consent_for_a_metadata_document_client_shows_its_hosts(site: Site) -> None:
    client_id = "https://tools.example.org/oauth/client.json"
    await site.add_client(
        client_id,
        name="Example Agent",
        redirect_uris=("http://127.0.0.1:41111/cb",),
        source="cimd",
    )
    params = authorize_params(
        site, new_verifier(), client_id=client_id, redirect_uri="http://127.0.0.1:41111/cb"
    )
    async with Browserish(site) as b:
        page = await b.consent_page(params)
    assert "Published by" in page.text and "tools.example.org" in page.text
    assert "127.0.0.1:41111" in page.text
    assert "Not verified by your administrator" in page.text
