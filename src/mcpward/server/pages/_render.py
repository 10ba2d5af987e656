"""HTML rendering (Jinja2, autoescaped) and the security headers every page carries."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse, Response

# Only what can appear in a CSP source expression: nothing may smuggle in a directive.
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.\-]*$")

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Same-origin only: form posts keep a real Origin header, other sites (and the client
    # the browser is sent back to) learn nothing about the URL of this page.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


def form_target(url: str) -> str | None:
    """The CSP source that lets a form submission end at ``url`` (browsers apply
    ``form-action`` to the redirects that follow a form post)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    if parts.scheme in ("http", "https"):
        return f"{parts.scheme}://{host}" if _HOST.match(host) else None
    if _SCHEME.match(parts.scheme):
        return f"{parts.scheme}:"
    return None


def content_security_policy(form_targets: Iterable[str] = ()) -> str:
    targets = " ".join(["'self'", *sorted(set(form_targets))])
    return (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; "
        f"form-action {targets}; frame-ancestors 'none'; base-uri 'none'"
    )


class Renderer:
    """Pages from the ``templates`` folder of ``package`` (the sign-in pages', or another
    set of pages that wants the same rendering and headers: the operator console)."""

    def __init__(
        self,
        globals_: dict[str, Any],
        *,
        https: bool = False,
        package: str = "mcpward.server.pages",
    ) -> None:
        self.https = https
        self.env = Environment(
            loader=PackageLoader(package, "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(globals_)

    def page(
        self,
        template: str,
        context: dict[str, Any],
        *,
        status: int = 200,
        form_targets: Iterable[str] = (),
    ) -> HTMLResponse:
        html = self.env.get_template(template).render(**context)
        headers = {
            **SECURITY_HEADERS,
            "Content-Security-Policy": content_security_policy(form_targets),
        }
        if self.https:
            headers["Strict-Transport-Security"] = "max-age=31536000"
        return HTMLResponse(html, status_code=status, headers=headers)


def redirect(location: str, status: int = 303) -> Response:
    return RedirectResponse(location, status_code=status, headers=dict(SECURITY_HEADERS))
