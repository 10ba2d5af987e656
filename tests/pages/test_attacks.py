"""What an attacker tries at the authorization endpoint and its forms."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx
import pytest

from tests.pages.support import (
    REDIRECT,
    WEB_REDIRECT,
    Browserish,
    Site,
    authorize_params,
    authorize_path,
    field,
    new_verifier,
    redeem,
)

BAD_REDIRECTS = [
    pytest.param("https://evil.example/oauth/callback?tenant=7", id="unregistered"),
    pytest.param(WEB_REDIRECT + "&next=https://evil.example", id="added-query"),
    pytest.param("https://app.example.com/oauth/callback?tenant=7&", id="trailing-ampersand"),
    pytest.param("https://app.example.com/OAuth/Callback?tenant=7", id="changed-case-path"),
    pytest.param("HTTPS://APP.EXAMPLE.COM/oauth/callback?tenant=7", id="changed-case-host"),
    pytest.param("https://app.example.com/oauth/callback/../evil?tenant=7", id="dot-segments"),
    pytest.param("https://app.example.com/oauth/callback?tenant=7#frag", id="fragment"),
    pytest.param("javascript:alert(document.domain)//", id="javascript"),
    pytest.param("JavaScript:alert(1)", id="javascript-case"),
    pytest.param("data:text/html,<script>alert(1)</script>", id="data"),
    pytest.param(WEB_REDIRECT + "\r\nLocation: https://evil.example", id="crlf"),
    pytest.param(WEB_REDIRECT + "\x00", id="nul"),
    pytest.param("\thttps://app.example.com/oauth/callback?tenant=7", id="leading-tab"),
    pytest.param(
        "https://app.example.com@evil.example/oauth/callback?tenant=7", id="userinfo-host"
    ),
    pytest.param(
        "https://app.example.com:443@evil.example/oauth/callback?tenant=7", id="userinfo-port"
    ),
    pytest.param("https://evil.example\\@app.example.com/oauth/callback?tenant=7", id="backslash"),
    pytest.param("https://app.example.com.evil.example/oauth/callback?tenant=7", id="suffix-host"),
    pytest.param("//evil.example/oauth/callback", id="scheme-relative"),
]


@pytest.mark.parametrize("redirect_uri", BAD_REDIRECTS)
async def test_open_redirect_attempts_are_shown_on_a_page_never_redirected(
    site: Site, redirect_uri: str
) -> None:
    params = authorize_params(site, new_verifier(), client_id="web", redirect_uri=redirect_uri)
    async with httpx.AsyncClient(base_url=site.url) as http:
        response = await http.get(authorize_path(params))
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "This sign-in link is not valid" in response.text
    assert "evil.example" not in response.text
    assert "<script>alert" not in response.text


@pytest.mark.parametrize(
    "redirect_uri",
    [
        pytest.param("http://127.0.0.1:33418@evil.example/callback", id="userinfo"),
        pytest.param("http://localhost:33418/callback", id="localhost-name"),
        pytest.param("http://127.0.0.1:33418/callback/", id="trailing-slash"),
        pytest.param("http://127.0.0.2:33418/callback", id="other-loopback"),
        pytest.param("https://127.0.0.1:33418/callback", id="scheme"),
    ],
)
async def test_loopback_redirect_tricks_for_native_clients(site: Site, redirect_uri: str) -> None:
    params = authorize_params(site, new_verifier(), redirect_uri=redirect_uri)
    async with httpx.AsyncClient(base_url=site.url) as http:
        response = await http.get(authorize_path(params))
    assert response.status_code == 400
    assert "location" not in response.headers


async def test_unknown_client_and_repeated_parameters_are_shown_on_a_page(site: Site) -> None:
    async with httpx.AsyncClient(base_url=site.url) as http:
        unknown = await http.get(
            authorize_path(authorize_params(site, new_verifier(), client_id="nobody"))
        )
        params = authorize_params(site, new_verifier())
        repeated = await http.get(
            "/authorize?" + urlencode(params) + "&" + urlencode({"redirect_uri": WEB_REDIRECT})
        )
    assert unknown.status_code == 400 and "not registered" in unknown.text
    assert repeated.status_code == 400 and "location" not in repeated.headers


@pytest.mark.parametrize(
    ("overrides", "description"),
    [
        pytest.param({"code_challenge": None, "code_challenge_method": None}, "S256", id="no-pkce"),
        pytest.param({"code_challenge_method": "plain"}, "S256", id="plain"),
        pytest.param({"code_challenge_method": None}, "S256", id="no-method"),
        pytest.param({"code_challenge": "short"}, "digest", id="bad-challenge"),
        pytest.param({"response_type": "token"}, "code", id="implicit"),
    ],
)
async def test_pkce_s256_is_required(
    site: Site, overrides: dict[str, str | None], description: str
) -> None:
    params = authorize_params(site, new_verifier(), **overrides)
    async with Browserish(site) as b:
        response = await b.http.get(authorize_path(params))
    # The redirect URI is registered, so the error goes back to the client, with state.
    assert response.status_code == 302
    location = httpx.URL(response.headers["location"])
    assert str(location).startswith(REDIRECT + "?")
    assert location.params["error"] in ("invalid_request", "unsupported_response_type")
    assert description in location.params["error_description"]
    assert location.params["state"] == params["state"]
    assert location.params["iss"] == site.issuer
    assert "code" not in location.params


async def test_state_is_returned_exactly_and_cannot_inject_parameters(site: Site) -> None:
    state = "x&code=injected&iss=https://evil.example#frag é"
    params = authorize_params(site, new_verifier(), state=state)
    async with Browserish(site) as b:
        page = await b.consent_page(params)
        done = await b.approve(page)
    location = httpx.URL(done.headers["location"])
    assert location.params["state"] == state
    assert location.params.get_list("code") != ["injected"]
    assert len(location.params.get_list("code")) == 1
    assert location.params.get_list("iss") == [site.issuer]
    assert not location.fragment


async def test_tampered_request_in_the_consent_form_is_validated_again(site: Site) -> None:
    params = authorize_params(site, new_verifier())
    async with Browserish(site) as b:
        page = await b.consent_page(params)
        tampered = dict(params, redirect_uri="https://evil.example/cb")
        done = await b.post_pairs(
            "/consent",
            [
                ("csrf", field(page.text, "csrf")),
                ("request", urlencode(tampered)),
                ("decision", "approve"),
                ("scope", "orders.read"),
            ],
        )
        assert done.status_code == 400 and "location" not in done.headers
        # A scope ticked in the form that the client never asked for is not granted.
        verifier = new_verifier()
        params = authorize_params(site, verifier, scope="orders.read", prompt="consent")
        page = await b.http.get(authorize_path(params))
        done = await b.post_pairs(
            "/consent",
            [
                ("csrf", field(page.text, "csrf")),
                ("request", field(page.text, "request")),
                ("decision", "approve"),
                ("scope", "orders.read"),
                ("scope", "refund.admin"),
            ],
        )
    code = httpx.URL(done.headers["location"]).params["code"]
    assert (await redeem(site, code, verifier)).json()["scope"] == "orders.read"


async def test_consent_without_csrf_token_or_from_another_site_is_refused(site: Site) -> None:
    params = authorize_params(site, new_verifier())
    async with Browserish(site) as b, Browserish(site) as other:
        page = await b.consent_page(params)
        request = field(page.text, "request")
        missing = await b.http.post("/consent", data={"request": request, "decision": "approve"})
        assert missing.status_code == 403 and "location" not in missing.headers
        # A token from another (the attacker's own) session is worthless here.
        their_page = await other.consent_page(params)
        foreign = await b.http.post(
            "/consent",
            data={
                "csrf": field(their_page.text, "csrf"),
                "request": request,
                "decision": "approve",
            },
        )
        assert foreign.status_code == 403
        cross_site = await b.http.post(
            "/consent",
            data={"csrf": field(page.text, "csrf"), "request": request, "decision": "approve"},
            headers={"Origin": "https://evil.example"},
        )
        assert cross_site.status_code == 403
    assert not site.events("code.issued")


async def test_login_without_csrf_token_signs_nobody_in(site: Site) -> None:
    params = authorize_params(site, new_verifier())
    async with Browserish(site) as b:
        response = await b.http.post(
            "/login",
            data={"request": urlencode(params), "username": "alice", "password": "x" * 20},
        )
        assert response.status_code == 400
        assert "expired" in response.text
        page = await b.http.get(authorize_path(params))
        assert 'name="password"' in page.text
    assert not site.events("login.succeeded")


async def test_session_fixation(site: Site) -> None:
    params = authorize_params(site, new_verifier())
    async with Browserish(site) as attacker:
        # The attacker obtains a session cookie and plants it in the victim's browser.
        await attacker.http.get(authorize_path(params))
        planted = attacker.http.cookies["mcpward_session"]
    async with Browserish(site) as victim:
        victim.http.cookies.set("mcpward_session", planted, domain="127.0.0.1")
        login = await victim.sign_in(params)
        assert login.status_code == 303
        assert victim.http.cookies["mcpward_session"] != planted
    async with Browserish(site) as attacker:
        attacker.http.cookies.set("mcpward_session", planted, domain="127.0.0.1")
        page = await attacker.http.get(authorize_path(params))
        assert 'name="password"' in page.text  # still anonymous


async def test_forged_session_cookie_is_ignored(site: Site) -> None:
    user = await site.server.store.users.by_username("alice")
    assert user is not None
    import base64
    import json

    body = base64.urlsafe_b64encode(
        json.dumps({"sid": "x", "uid": user.id, "issued_at": 0, "expires_at": 9e12}).encode()
    ).decode()
    async with Browserish(site) as b:
        b.http.cookies.set("mcpward_session", body.rstrip("=") + ".AAAA", domain="127.0.0.1")
        page = await b.http.get(authorize_path(authorize_params(site, new_verifier())))
    assert 'name="password"' in page.text


async def test_code_replay_is_refused_and_revokes_what_it_produced(site: Site) -> None:
    verifier = new_verifier()
    async with Browserish(site) as b:
        code = await b.code_for(authorize_params(site, verifier))
    first = await redeem(site, code, verifier)
    assert first.status_code == 200
    replay = await redeem(site, code, verifier)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    async with httpx.AsyncClient(base_url=site.url) as http:
        refreshed = await http.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": first.json()["refresh_token"],
                "client_id": "cli",
            },
        )
    assert refreshed.status_code == 400


async def test_code_with_wrong_verifier_or_redirect_is_refused(site: Site) -> None:
    verifier = new_verifier()
    async with Browserish(site) as b:
        code = await b.code_for(authorize_params(site, verifier))
    wrong = await redeem(site, code, new_verifier())
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
