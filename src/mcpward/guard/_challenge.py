"""The one function that builds every ``WWW-Authenticate`` header the guard sends.

RFC 6750 §3 gives the syntax (auth-params as quoted strings); RFC 9728 §5.1 adds
``resource_metadata``. Values are escaped here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable


def _quote(value: str) -> str:
    # RFC 7230 quoted-string: backslash-escape '"' and '\'; drop control characters so a
    # value can never split the header.
    cleaned = "".join(ch for ch in value if ch >= " " and ch != "\x7f")
    return '"' + cleaned.replace("\\", "\\\\").replace('"', '\\"') + '"'


def www_authenticate(
    *,
    resource_metadata: str | None,
    error: str | None = None,
    description: str | None = None,
    scope: Iterable[str] | None = None,
) -> str:
    """``Bearer`` challenge: ``error`` only when a token was presented (RFC 6750 §3.1)."""
    params: list[tuple[str, str]] = []
    if error is not None:
        params.append(("error", error))
    if description is not None:
        params.append(("error_description", description))
    if scope is not None:
        params.append(("scope", " ".join(sorted(set(scope)))))
    if resource_metadata is not None:
        params.append(("resource_metadata", resource_metadata))
    if not params:
        return "Bearer"
    return "Bearer " + ", ".join(f"{name}={_quote(value)}" for name, value in params)
