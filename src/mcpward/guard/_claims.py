"""Where scopes, client id and roles live in access tokens from different providers.

RFC 9068 puts scopes in ``scope`` (space-separated) and the client in ``client_id``;
providers differ: Okta uses ``scp`` (an array) and ``cid``, Auth0 adds ``permissions`` (an
array, RBAC) and ``azp``, Keycloak uses ``azp`` and nests roles under ``realm_access``,
Clerk uses ``scp`` or ``scope`` and ``azp``. A preset says which claims to read, in order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ClaimMapping:
    scope_claims: tuple[str, ...] = ("scope", "scp")
    client_claims: tuple[str, ...] = ("client_id", "azp", "cid")
    # Dotted paths into nested objects, e.g. "realm_access.roles".
    role_claims: tuple[str, ...] = ("roles",)
    # JWT ``typ`` header values accepted; RFC 9068 §2.1 requires at+jwt. Providers that
    # predate RFC 9068 send "JWT".
    accepted_types: tuple[str, ...] = ("at+jwt", "application/at+jwt")

    def scopes(self, claims: Mapping[str, Any]) -> frozenset[str]:
        found: set[str] = set()
        for name in self.scope_claims:
            found |= _strings(claims.get(name))
        return frozenset(found)

    def client_id(self, claims: Mapping[str, Any]) -> str | None:
        for name in self.client_claims:
            value = claims.get(name)
            if isinstance(value, str) and value:
                return value
        return None

    def roles(self, claims: Mapping[str, Any]) -> frozenset[str]:
        found: set[str] = set()
        for path in self.role_claims:
            value: Any = claims
            for part in path.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
            found |= _strings(value)
        return frozenset(found)


def _strings(value: Any) -> set[str]:
    if isinstance(value, str):
        return set(value.split())
    if isinstance(value, list):
        return {item for item in value if isinstance(item, str) and item}
    return set()


MCPWARD = ClaimMapping()
KEYCLOAK = ClaimMapping(
    scope_claims=("scope",),
    client_claims=("client_id", "azp"),
    role_claims=("realm_access.roles", "roles"),
    accepted_types=("at+jwt", "application/at+jwt", "JWT", "Bearer"),
)
AUTH0 = ClaimMapping(
    scope_claims=("scope", "permissions"),
    client_claims=("client_id", "azp"),
    role_claims=("roles",),
    accepted_types=("at+jwt", "application/at+jwt", "JWT"),
)
OKTA = ClaimMapping(
    scope_claims=("scp", "scope"),
    client_claims=("cid", "client_id"),
    role_claims=("groups", "roles"),
    accepted_types=("at+jwt", "application/at+jwt", "JWT"),
)
CLERK = ClaimMapping(
    scope_claims=("scope", "scp"),
    client_claims=("client_id", "azp"),
    role_claims=("roles", "org_role"),
    accepted_types=("at+jwt", "application/at+jwt", "JWT"),
)

PRESETS: dict[str, ClaimMapping] = {
    "mcpward": MCPWARD,
    "keycloak": KEYCLOAK,
    "auth0": AUTH0,
    "okta": OKTA,
    "clerk": CLERK,
}
