"""How values are shown to people on the pages: moments in time, and where an
application sends the browser back to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from mcpward._hosts import is_loopback_host

# Month names spelled here, not by strftime("%b"), so the process locale cannot change them.
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class Moment:
    """A timestamp three ways: short for the eye (``1 Dec 2026``), in full for a tooltip,
    and in ISO 8601 for ``<time datetime=…>``."""

    short: str
    full: str
    iso: str


def moment(timestamp: float) -> Moment:
    at = datetime.fromtimestamp(timestamp, tz=UTC)
    return Moment(
        short=f"{at.day} {_MONTHS[at.month - 1]} {at.year}",
        full=at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        iso=at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


@dataclass(frozen=True, slots=True)
class RedirectTarget:
    """Where a redirect URI sends the browser: ``shown`` is what a person can check
    (the host of a web address, ``scheme://host`` or ``scheme:`` for an app's own
    scheme); ``local`` is true when it ends in an application on this computer (a
    loopback address, RFC 8252 §7.3, or a private-use URI scheme, §7.1)."""

    shown: str
    local: bool


def redirect_target(uri: str) -> RedirectTarget:
    parts = urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]
    if parts.scheme in ("http", "https"):
        return RedirectTarget(host, is_loopback_host(parts.hostname))
    # A custom scheme is named in full: "anysphere.cursor-retrieval" alone would read as
    # a web site's host, which it is not.
    return RedirectTarget(f"{parts.scheme}://{host}" if host else f"{parts.scheme}:", True)
