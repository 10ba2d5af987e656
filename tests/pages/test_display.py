"""How the pages show moments and redirect targets (pages/_display.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mcpward.server.pages._display import RedirectTarget, moment, redirect_target


def test_moment_is_short_for_the_eye_and_full_for_machines() -> None:
    at = moment(datetime(2026, 12, 1, 20, 49, 13, tzinfo=UTC).timestamp())
    assert at.short == "1 Dec 2026"
    assert at.full == "2026-12-01 20:49:13 UTC"
    assert at.iso == "2026-12-01T20:49:13Z"
    assert moment(datetime(2027, 1, 31, 23, 59, 59, tzinfo=UTC).timestamp()).short == "31 Jan 2027"


@pytest.mark.parametrize(
    ("uri", "shown", "local"),
    [
        ("http://127.0.0.1:33418/callback", "127.0.0.1:33418", True),
        ("http://localhost:8080/cb", "localhost:8080", True),
        ("http://[::1]:9000/cb", "[::1]:9000", True),
        ("https://app.example.com/oauth/callback?tenant=7", "app.example.com", False),
        # A claimed https redirect of a native app (RFC 8252 §7.2) is a web address.
        ("https://claimed.example.org/cb", "claimed.example.org", False),
        (
            "cursor://anysphere.cursor-retrieval/oauth/user-orders/callback",
            "cursor://anysphere.cursor-retrieval",
            True,
        ),
        # RFC 8252 §7.1's form, a reverse domain name and no host.
        ("com.example.orders:/oauth2redirect", "com.example.orders:", True),
    ],
)
def test_redirect_target(uri: str, shown: str, local: bool) -> None:
    assert redirect_target(uri) == RedirectTarget(shown, local)
