"""Property: whatever is requested, the scopes granted are exactly requested ∩ the
assertion's or policy's bound ∩ what the client may have ∩ the resource's scopes (all of
the bounds when nothing is requested), and never more; an empty intersection is
``invalid_scope``. For the ID-JAG (varying the ID-JAG's scope and the client's), the
workload rule (varying the rule's and the client's) and token exchange (varying the
policy's and the client's), over real HTTP on SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcpward.storage.records import JWT_BEARER, TOKEN_EXCHANGE, ResourceRecord
from tests.enterprise.conftest import DOWNSTREAM, INVENTORY_SCOPES
from tests.enterprise.support import Issuer, claims_of, exchange, jwt_bearer, serve_issuer
from tests.server.conftest import RESOURCE, SCOPES, Running, start

ORDERS = sorted(SCOPES)
INVENTORY = sorted(INVENTORY_SCOPES)


def subsets(items: list[str]) -> list[tuple[str, ...]]:
    return [c for n in range(len(items) + 1) for c in combinations(items, n)]


ORDER_SETS = subsets(ORDERS)  # 8, the empty set included
# A client's allowed scope: any subset, or None (every scope of the resource).
ALLOWED: list[tuple[str, ...] | None] = [None, *ORDER_SETS[1:]]
INVENTORY_ALLOWED: list[tuple[str, ...] | None] = [None, *subsets(INVENTORY)[1:]]
POLICY_SETS = subsets(INVENTORY)[1:]  # a policy names at least one scope


@dataclass
class Property:
    r: Running
    idp: Issuer
    platform: Issuer
    secrets: dict[str, str]


def _expected(
    requested: tuple[str, ...], bounds: list[tuple[str, ...] | None], universe: list[str]
) -> set[str]:
    granted = set(requested or universe)
    for bound in bounds:
        if bound is not None:
            granted &= set(bound)
    return granted


@pytest.fixture
async def prop(tmp_path: Path) -> AsyncIterator[Property]:
    async with serve_issuer() as idp, serve_issuer() as platform:
        rules = [
            {
                "name": f"r-{i}-{j}",
                "issuer": platform.url,
                "subject": f"sa-{i}-{j}",
                "client_id": f"wl-{j}",
                "scopes": list(rule_scopes) if rule_scopes is not None else None,
            }
            for i, rule_scopes in enumerate(ALLOWED)
            for j in range(len(ALLOWED))
        ]
        policies = [
            {
                "client_id": f"tx-{i}-{j}",
                "from_resource": RESOURCE,
                "to_resource": DOWNSTREAM,
                "scopes": list(policy),
            }
            for i, policy in enumerate(POLICY_SETS)
            for j in range(len(INVENTORY_ALLOWED))
        ]
        overrides: dict[str, Any] = {
            "trusted_issuers": [
                {"issuer": idp.url, "profiles": ["id-jag"]},
                {"issuer": platform.url, "profiles": ["workload"], "single_use": False},
            ],
            "workload_rules": rules,
            "token_exchange": policies,
        }
        url = f"sqlite+aiosqlite:///{tmp_path / 'property.db'}"
        async for r in start(url, tmp_path, **overrides):
            await r.server.register_resource(
                ResourceRecord(uri=DOWNSTREAM, name="Inventory", scopes=INVENTORY_SCOPES)
            )
            secrets: dict[str, str] = {}
            for j, allowed in enumerate(ALLOWED):
                scope = " ".join(allowed) if allowed is not None else None
                secret = await r.confidential_client(
                    f"jag-{j}", grant_types=(JWT_BEARER,), allowed_scope=scope
                )
                assert secret is not None
                secrets[f"jag-{j}"] = secret
                await r.confidential_client(
                    f"wl-{j}", method="none", grant_types=(JWT_BEARER,), allowed_scope=scope
                )
            for i in range(len(POLICY_SETS)):
                for j, allowed in enumerate(INVENTORY_ALLOWED):
                    secret = await r.confidential_client(
                        f"tx-{i}-{j}",
                        grant_types=(TOKEN_EXCHANGE, "client_credentials"),
                        allowed_scope=" ".join(allowed) if allowed is not None else None,
                    )
                    assert secret is not None
                    secrets[f"tx-{i}-{j}"] = secret
            agent = await r.confidential_client("orders-agent", allowed_scope=None)
            assert agent is not None
            secrets["orders-agent"] = agent
            yield Property(r, idp, platform, secrets)


def _check(status: int, body: dict[str, object], expected: set[str]) -> None:
    if expected:
        assert status == 200, body
        granted = str(body["scope"]).split()
        assert set(granted) == expected
    else:
        assert (status, body["error"]) == (400, "invalid_scope")


SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(
    requested=st.sampled_from(ORDER_SETS),
    jag=st.sampled_from([None, *ORDER_SETS]),
    client=st.integers(0, len(ALLOWED) - 1),
)
async def test_id_jag_scopes(
    prop: Property, requested: tuple[str, ...], jag: tuple[str, ...] | None, client: int
) -> None:
    client_id = f"jag-{client}"
    # jag None: the ID-JAG has no scope claim (no bound); () is the empty string.
    scope = " ".join(jag) if jag is not None else None
    assertion = prop.idp.id_jag(prop.r.clock(), client_id=client_id, scope=scope)
    if jag == ():
        assertion = prop.idp.sign({**claims_of(assertion), "scope": ""})
    data = jwt_bearer(assertion, **({"scope": " ".join(requested)} if requested else {}))
    response = await prop.r.http.post(
        "/token", data=data, auth=(client_id, prop.secrets[client_id])
    )
    expected = _expected(requested, [jag, ALLOWED[client]], ORDERS)
    _check(response.status_code, response.json(), expected)


@SETTINGS
@given(
    requested=st.sampled_from(ORDER_SETS),
    rule=st.integers(0, len(ALLOWED) - 1),
    client=st.integers(0, len(ALLOWED) - 1),
)
async def test_workload_scopes(
    prop: Property, requested: tuple[str, ...], rule: int, client: int
) -> None:
    assertion = prop.platform.workload(prop.r.clock(), sub=f"sa-{rule}-{client}")
    extra = {"scope": " ".join(requested)} if requested else {}
    response = await prop.r.http.post(
        "/token", data=jwt_bearer(assertion, resource=RESOURCE, **extra)
    )
    expected = _expected(requested, [ALLOWED[rule], ALLOWED[client]], ORDERS)
    _check(response.status_code, response.json(), expected)


@SETTINGS
@given(
    requested=st.sampled_from(subsets(INVENTORY)),
    policy=st.integers(0, len(POLICY_SETS) - 1),
    client=st.integers(0, len(INVENTORY_ALLOWED) - 1),
)
async def test_exchange_scopes(
    prop: Property, requested: tuple[str, ...], policy: int, client: int
) -> None:
    client_id = f"tx-{policy}-{client}"
    auth = (client_id, prop.secrets[client_id])
    # An agent's token for the orders MCP server stands in for a caller's.
    inbound = await prop.r.http.post(
        "/token",
        data={"grant_type": "client_credentials", "resource": RESOURCE},
        auth=("orders-agent", prop.secrets["orders-agent"]),
    )
    extra = {"scope": " ".join(requested)} if requested else {}
    response = await prop.r.http.post(
        "/token",
        data=exchange(inbound.json()["access_token"], resource=DOWNSTREAM, **extra),
        auth=auth,
    )
    expected = _expected(requested, [POLICY_SETS[policy], INVENTORY_ALLOWED[client]], INVENTORY)
    _check(response.status_code, response.json(), expected)
