"""How values are shown on console pages: times in UTC to the minute (operators compare
them with logs), sources and states in words."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from mcpward.server.pages._display import Moment

SOURCES = {
    "preregistered": "Pre-registered",
    "dcr": "Registered (DCR)",
    "cimd": "Metadata document",
}
# Why a grant was revoked, for people.
REVOKED = {
    "refresh_reuse": "refresh token reuse detected",
    "code_replay": "authorization code replayed",
    "operator_revoked": "revoked by an operator",
    "offboarded": "user offboarded",
    "client_disabled": "client disabled",
    "client_revoked": "client's tokens revoked",
    "consent_revoked": "consent withdrawn",
    "revoked_by_client": "revoked by the client",
}


def stamp(timestamp: float | None) -> Moment | None:
    """``2026-10-05 09:30`` on the page, to the second in the tooltip; None for never."""
    if timestamp is None:
        return None
    at = datetime.fromtimestamp(timestamp, tz=UTC)
    return Moment(
        short=at.strftime("%Y-%m-%d %H:%M"),
        full=at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        iso=at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def short_id(value: str, keep: int = 10) -> str:
    return value if len(value) <= keep + 1 else value[:keep] + "…"


def client_link(client_id: str) -> str:
    return "/clients/show?" + urlencode({"id": client_id})


def user_link(user_id: str) -> str:
    return "/users/show?" + urlencode({"id": user_id})


def with_done(back: str, done: str) -> str:
    """``back`` with the notice to show there after an action (``done=...``)."""
    return back + ("&" if "?" in back else "?") + urlencode({"done": done})
