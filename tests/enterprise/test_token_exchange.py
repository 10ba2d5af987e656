"""On-behalf-of tokens for downstream APIs (RFC 8693): the MCP server, authenticating as
its own client, exchanges the access token it received for one to the downstream API its
exchange policy names; the new token names the person, carries ``act`` and the grant's
``sid``, and is revoked with the person's grant."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.enterprise.conftest import DOWNSTREAM, UNREGISTERED, WAREHOUSE, Enterprise
from tests.enterprise.support import ACCESS_TOKEN_TYPE, claims_of, exchange
from tests.server.conftest import OTHER_RESOURCE, RESOURCE
from tests.server.support import code_flow, public_client

VERIFIER = "v" * 64


async def user_tokens(e: Enterprise) -> dict[str, Any]:
    """user-1 signed in with the public client ``cli``: an access token for the orders
    MCP server and a refresh token (the grant's family)."""
    await public_client(e.r)
    response = await code_flow(
        e.r,
        VERIFIER,
        client_id="cli",
        redirect_uri="http://127.0.0.1:33418/callback",
        scope="orders.read",
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def exchange_as(
    e: Enterprise, client: str, subject_token: str, **extra: str
) -> httpx.Response:
    return await e.r.http.post(
        "/token", data=exchange(subject_token, **extra), auth=e.basic(client)
    )


async def test_the_mcp_server_gets_a_downstream_token_on_the_persons_behalf(
    enterprise: Enterprise,
) -> None:
    e = enterprise
    tokens = await user_tokens(e)
    inbound = tokens["access_token"]
    response = await exchange_as(e, "orders-mcp", inbound, resource=DOWNSTREAM)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["issued_token_type"] == ACCESS_TOKEN_TYPE
    assert body["token_type"] == "Bearer" and "refresh_token" not in body
    assert body["scope"] == "inventory.read" and body["expires_in"] == 120
    claims, subject = claims_of(body["access_token"]), claims_of(inbound)
    assert claims["sub"] == "user-1" == subject["sub"]
    assert claims["aud"] == DOWNSTREAM and claims["client_id"] == "orders-mcp"
    assert claims["act"] == {"sub": "orders-mcp"}
    assert claims["sid"] == subject["sid"]  # revoked with the person's grant
    assert claims["exp"] - claims["iat"] == 120

    event = next(x for x in e.r.audit.events() if x["event"] == "token.exchanged")
    assert event["client_id"] == "orders-mcp" and event["subject"] == "user-1"
    assert event["audience"] == DOWNSTREAM and event["jti"] == claims["jti"]
    assert event["detail"] == {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_jti": subject["jti"],
        "subject_client": "cli",
        "from_resource": RESOURCE,
        "actor_chain": "orders-mcp",
        "family": subject["sid"],
    }
    lines = "\n".join(json.dumps(x) for x in e.r.audit.events())
    for token in (inbound, body["access_token"], tokens["refresh_token"]):
        assert token.split(".")[-1] not in lines


async def test_audience_names_the_downstream_too(enterprise: Enterprise) -> None:
    e = enterprise
    inbound = (await user_tokens(e))["access_token"]
    by_audience = await exchange_as(e, "orders-mcp", inbound, audience=DOWNSTREAM)
    assert by_audience.status_code == 200
    both = await exchange_as(e, "orders-mcp", inbound, audience=DOWNSTREAM, resource=DOWNSTREAM)
    assert both.status_code == 200


async def test_scopes_are_the_requested_within_the_policy(enterprise: Enterprise) -> None:
    e = enterprise
    inbound = (await user_tokens(e))["access_token"]
    wider = await exchange_as(
        e, "orders-mcp", inbound, resource=DOWNSTREAM, scope="inventory.read inventory.write"
    )
    assert wider.json()["scope"] == "inventory.read"


async def test_a_downstream_token_never_outlives_the_subject_token(enterprise: Enterprise) -> None:
    e = enterprise
    inbound = (await user_tokens(e))["access_token"]
    left = claims_of(inbound)["exp"] - e.r.clock()
    e.r.clock.advance(left - 30)
    response = await exchange_as(e, "orders-mcp", inbound, resource=DOWNSTREAM)
    assert response.status_code == 200
    assert claims_of(response.json()["access_token"])["exp"] <= claims_of(inbound)["exp"]
    assert response.json()["expires_in"] <= 30


async def test_revoking_the_persons_grant_revokes_the_downstream_token(
    enterprise: Enterprise,
) -> None:
    e = enterprise
    tokens = await user_tokens(e)
    downstream = (
        await exchange_as(e, "orders-mcp", tokens["access_token"], resource=DOWNSTREAM)
    ).json()
    introspect = {"token": downstream["access_token"]}
    active = await e.r.http.post("/introspect", data=introspect, auth=e.basic("orders-mcp"))
    assert active.json()["active"] is True and active.json()["act"] == {"sub": "orders-mcp"}
    revoked = await e.r.http.post(
        "/revoke", data={"token": tokens["refresh_token"], "client_id": "cli"}
    )
    assert revoked.status_code == 200
    after = await e.r.http.post("/introspect", data=introspect, auth=e.basic("orders-mcp"))
    assert after.json() == {"active": False}
    again = await exchange_as(e, "orders-mcp", tokens["access_token"], resource=DOWNSTREAM)
    assert again.status_code == 400
    assert again.json()["error_description"] == "the subject token has been revoked"


async def test_a_second_hop_nests_the_actor_chain(enterprise: Enterprise) -> None:
    e = enterprise
    inbound = (await user_tokens(e))["access_token"]
    first = (await exchange_as(e, "orders-mcp", inbound, resource=DOWNSTREAM)).json()
    second = await exchange_as(e, "inventory-api", first["access_token"], resource=WAREHOUSE)
    assert second.status_code == 200, second.text
    claims = claims_of(second.json()["access_token"])
    assert claims["sub"] == "user-1" and claims["client_id"] == "inventory-api"
    assert claims["act"] == {"sub": "inventory-api", "act": {"sub": "orders-mcp"}}
    event = [x for x in e.r.audit.events() if x["event"] == "token.exchanged"][-1]
    assert event["detail"]["actor_chain"] == "inventory-api,orders-mcp"  # type: ignore[index]


def _forged(token: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    header = jwt.get_unverified_header(token)
    return jwt.encode(claims_of(token), key, algorithm="ES256", headers=header)


NEGATIVE: dict[str, tuple[dict[str, Any], int, str]] = {
    "audience the policy does not allow": ({"resource": OTHER_RESOURCE}, 400, "invalid_target"),
    "audience not registered": ({"resource": UNREGISTERED}, 400, "invalid_target"),
    "two audiences": ({"resource": DOWNSTREAM, "audience": WAREHOUSE}, 400, "invalid_target"),
    "no audience": ({"resource": None}, 400, "invalid_target"),
    "scope not allowed": ({"scope": "inventory.write"}, 400, "invalid_scope"),
    "scope unknown": ({"scope": "payroll.read"}, 400, "invalid_scope"),
    "client without a policy": ({"client": "other-mcp"}, 400, "invalid_grant"),
    "client may not exchange": ({"client": "mcp-client"}, 400, "unauthorized_client"),
    "no client authentication": ({"client": None}, 401, "invalid_client"),
    "subject token for another resource": ({"subject": "other"}, 400, "invalid_grant"),
    "expired subject token": ({"subject": "expired"}, 400, "invalid_grant"),
    "forged subject token": ({"subject": "forged"}, 400, "invalid_grant"),
    "not an access token of this server": ({"subject": "garbage"}, 400, "invalid_grant"),
    "refresh token as subject": ({"subject": "refresh"}, 400, "invalid_grant"),
    "wrong subject_token_type": (
        {"subject_token_type": "urn:ietf:params:oauth:token-type:id_token"},
        400,
        "invalid_request",
    ),
    "no subject_token": ({"subject": "none"}, 400, "invalid_request"),
    "requested a refresh token": (
        {"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"},
        400,
        "invalid_request",
    ),
    "actor_token": (
        {"actor_token": "x", "actor_token_type": ACCESS_TOKEN_TYPE},
        400,
        "invalid_request",
    ),
}


@pytest.mark.parametrize("case", list(NEGATIVE))
async def test_negative_matrix(enterprise: Enterprise, case: str) -> None:
    e = enterprise
    change, status, error = NEGATIVE[case]
    change = dict(change)
    tokens = await user_tokens(e)
    subject = change.pop("subject", "good")
    client = change.pop("client", "orders-mcp")
    if subject == "other":
        other = await e.r.http.post(
            "/token",
            data={"grant_type": "client_credentials", "resource": OTHER_RESOURCE},
            auth=e.basic("orders-mcp"),
        )
        token = other.json()["access_token"]
    elif subject == "expired":
        token = tokens["access_token"]
        e.r.clock.advance(16 * 60)
    elif subject == "forged":
        token = _forged(tokens["access_token"])
    elif subject == "garbage":
        token = e.idp.id_jag(e.r.clock())
    elif subject == "refresh":
        token = tokens["refresh_token"]
    else:
        token = tokens["access_token"] if subject == "good" else ""
    data = exchange(token, resource=DOWNSTREAM)
    for name, value in change.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    if client is None:
        response = await e.r.http.post("/token", data={**data, "client_id": "orders-mcp"})
    else:
        response = await e.r.http.post("/token", data=data, auth=e.basic(client))
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert not any(x["event"] == "token.exchanged" for x in e.r.audit.events())
    if token:
        assert token.split(".")[-1] not in response.text
        lines = "\n".join(json.dumps(x) for x in e.r.audit.events())
        assert token.split(".")[-1] not in lines


async def test_policy_refusals_are_audited(enterprise: Enterprise) -> None:
    e = enterprise
    inbound = (await user_tokens(e))["access_token"]
    await exchange_as(e, "orders-mcp", inbound, resource=OTHER_RESOURCE)
    event = next(x for x in e.r.audit.events() if x["event"] == "exchange.refused")
    assert event["reason"] == "invalid_target" and event["client_id"] == "orders-mcp"
    assert event["subject"] == "user-1" and event["jti"] == claims_of(inbound)["jti"]
