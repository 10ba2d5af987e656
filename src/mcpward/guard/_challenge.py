"""The one function that builds every ``WWW-Authenticate`` header the guard sends.

RFC 6750 §3 gives the syntax (auth-params as quoted strings); RFC 9728 §5.1 adds
``resource_metadata``; RFC 9449 §7.1 adds the ``DPoP`` scheme with its ``algs``. A
resource that accepts both schemes names both, Bearer first (clients that speak only
Bearer read the first challenge), and the error goes with the scheme the request used.
Values are escaped here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Scheme = Literal["Bearer", "DPoP"]


@dataclass(frozen=True, slots=True)
class Schemes:
    """What a resource accepts: Bearer tokens unless it requires DPoP, and DPoP proofs
    signed with ``dpop_algs`` (none: no DPoP)."""

    bearer: bool = True
    dpop_algs: tuple[str, ...] = ()


BEARER_ONLY = Schemes()


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
    scheme: Scheme = "Bearer",
    algs: Iterable[str] | None = None,
) -> str:
    """One challenge: ``error`` only when a token was presented (RFC 6750 §3.1)."""
    params: list[tuple[str, str]] = []
    if error is not None:
        params.append(("error", error))
    if description is not None:
        params.append(("error_description", description))
    if scope is not None:
        params.append(("scope", " ".join(sorted(set(scope)))))
    if algs is not None:
        params.append(("algs", " ".join(algs)))
    if resource_metadata is not None:
        params.append(("resource_metadata", resource_metadata))
    if not params:
        return scheme
    return scheme + " " + ", ".join(f"{name}={_quote(value)}" for name, value in params)


def challenges(
    schemes: Schemes,
    *,
    resource_metadata: str | None,
    error: str | None = None,
    description: str | None = None,
    scope: Iterable[str] | None = None,
    used: Scheme = "Bearer",
) -> str:
    """Every scheme ``schemes`` accepts, the error parameters on the one ``used`` (or on
    DPoP when Bearer is not accepted)."""
    on_bearer = schemes.bearer and (used == "Bearer" or not schemes.dpop_algs)
    parts: list[str] = []
    if schemes.bearer:
        parts.append(
            www_authenticate(resource_metadata=resource_metadata)
            if not on_bearer
            else www_authenticate(
                resource_metadata=resource_metadata,
                error=error,
                description=description,
                scope=scope,
            )
        )
    if schemes.dpop_algs:
        parts.append(
            www_authenticate(
                resource_metadata=resource_metadata, scheme="DPoP", algs=schemes.dpop_algs
            )
            if on_bearer
            else www_authenticate(
                resource_metadata=resource_metadata,
                error=error,
                description=description,
                scope=scope,
                scheme="DPoP",
                algs=schemes.dpop_algs,
            )
        )
    return ", ".join(parts)
