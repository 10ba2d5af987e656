"""Enterprise-managed authorization (SEP-990): an ID-JAG from a trusted IdP redeemed with
the JWT bearer grant, over real HTTP against the server, on SQLite and PostgreSQL; the
IdP's keys found by OpenID discovery at a real HTTP issuer."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.enterprise.conftest import Enterprise
from tests.enterprise.support import claims_of, dpop_proof, jwt_bearer
from tests.server.conftest import RESOURCE

ISSUER = "http://127.0.0.1:8400"


async def redeem(
    e: Enterprise, assertion: str, client: str = "mcp-client", **extra: str
) -> httpx.Response:
    return await e.r.http.post("/token", data=jwt_bearer(assertion, **extra), auth=e.basic(client))


async def verified(e: Enterprise, token: str) -> dict[str, Any]:
    """The access token's claims, verified by PyJWT against the server's published JWKS."""
    jwks = (await e.r.http.get("/jwks.json")).json()
    key = jwt.PyJWK(jwks["keys"][0])
    return dict(jwt.decode(token, key, algorithms=["ES256"], audience=RESOURCE, issuer=ISSUER))


async def test_an_id_jag_is_redeemed_for_an_access_token_without_refresh_token(
    enterprise: Enterprise,
) -> None:
    e = enterprise
    assertion = e.idp.id_jag(e.r.clock())
    response = await redeem(e, assertion)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "orders.read orders.write"
    assert "refresh_token" not in body  # draft §4.4.3: the ID-JAG replaces it
    assert response.headers["cache-control"] == "no-store"
    claims = await verified(e, body["access_token"])
    assert claims["client_id"] == "mcp-client"
    assert claims["aud"] == RESOURCE  # from the ID-JAG's resource
    user = await e.r.server.store.users.by_upstream(e.idp.url, "employee-7")
    assert user is not None and claims["sub"] == user.id
    assert "sid" not in claims

    event = next(x for x in e.r.audit.events() if x["event"] == "token.issued_from_assertion")
    assert event["detail"] == {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "profile": "id-jag",
        "assertion_issuer": e.idp.url,
        "assertion_jti": claims_of(assertion)["jti"],
    }
    assert event["client_id"] == "mcp-client" and event["jti"] == claims["jti"]
    lines = "\n".join(json.dumps(x) for x in e.r.audit.events())
    assert assertion not in lines and assertion.split(".")[2] not in lines
    assert body["access_token"].split(".")[2] not in lines


async def test_the_same_person_is_the_same_local_user_and_a_disabled_one_is_refused(
    enterprise: Enterprise,
) -> None:
    e = enterprise
    first = await redeem(e, e.idp.id_jag(e.r.clock()))
    second = await redeem(e, e.idp.id_jag(e.r.clock()))
    sub = claims_of(first.json()["access_token"])["sub"]
    assert claims_of(second.json()["access_token"])["sub"] == sub
    created = [x for x in e.r.audit.events() if x["event"] == "user.created"]
    assert len(created) == 1
    await e.r.server.store.users.set_disabled(sub, e.r.clock())
    refused = await redeem(e, e.idp.id_jag(e.r.clock()))
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


async def test_granted_scopes_are_requested_and_id_jag_and_client_allowed(
    enterprise: Enterprise,
) -> None:
    e = enterprise
    narrowed = await redeem(e, e.idp.id_jag(e.r.clock()), scope="orders.read refund.admin")
    assert narrowed.json()["scope"] == "orders.read"
    # The IdP set no scope: the client's own limit bounds it.
    unbounded = await redeem(e, e.idp.id_jag(e.r.clock(), scope=None))
    assert unbounded.json()["scope"] == "orders.read orders.write refund.admin"


async def test_an_audience_array_of_one_is_accepted(enterprise: Enterprise) -> None:
    e = enterprise
    response = await redeem(e, e.idp.id_jag(e.r.clock(), aud=[ISSUER]))
    assert response.status_code == 200, response.text


async def test_a_request_may_pick_one_of_the_id_jags_resources(enterprise: Enterprise) -> None:
    e = enterprise
    both = [RESOURCE, "https://other.example/mcp"]
    picked = await redeem(
        e, e.idp.id_jag(e.r.clock(), resource=both, scope=None), resource=RESOURCE
    )
    assert picked.status_code == 200 and claims_of(picked.json()["access_token"])["aud"] == RESOURCE
    ambiguous = await redeem(e, e.idp.id_jag(e.r.clock(), resource=both))
    assert ambiguous.status_code == 400 and ambiguous.json()["error"] == "invalid_target"


def _other_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


# Each case: how the ID-JAG (or the request) differs from a good one, and the RFC's answer.
NEGATIVE: dict[str, tuple[dict[str, Any], int, str]] = {
    "wrong typ": ({"typ": "JWT"}, 400, "invalid_grant"),
    "no typ": ({"typ": None}, 400, "invalid_grant"),
    "aud array of two": ({"aud": [ISSUER, "https://other.example"]}, 400, "invalid_grant"),
    "aud mismatch": ({"aud": "https://other.example"}, 400, "invalid_grant"),
    "aud the token endpoint": ({"aud": ISSUER + "/token"}, 400, "invalid_grant"),
    "client_id mismatch": ({"client_id": "someone-else"}, 400, "invalid_grant"),
    "no client_id": ({"client_id": None}, 400, "invalid_grant"),
    "expired": ({"exp_offset": -120}, 400, "invalid_grant"),
    "lives too long": ({"exp_offset": 2 * 86_400}, 400, "invalid_grant"),
    "issued in the future": ({"iat_offset": 600}, 400, "invalid_grant"),
    "no iat": ({"iat": None}, 400, "invalid_grant"),
    "no jti": ({"jti": None}, 400, "invalid_grant"),
    "no sub": ({"sub": None}, 400, "invalid_grant"),
    "untrusted issuer": ({"iss": "https://evil.example"}, 400, "invalid_grant"),
    "bad signature": ({"foreign_key": True}, 400, "invalid_grant"),
    "unknown kid": ({"kid": "key-9"}, 400, "invalid_grant"),
    "cnf without proof": (
        {"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}},
        400,
        "invalid_grant",
    ),
    "no resource": ({"resource": None}, 400, "invalid_grant"),
    "unknown resource": ({"resource": "https://unknown.example/mcp"}, 400, "invalid_target"),
    "scope not allowed": (
        {
            "scope": "refund.admin",
            "client": "mcp-client-limited",
            "client_id": "mcp-client-limited",
        },
        400,
        "invalid_scope",
    ),
    "scope unknown to the resource": ({"request_scope": "payroll.read"}, 400, "invalid_scope"),
    "resource not in the ID-JAG": (
        {"request_resource": "https://other.example/mcp"},
        400,
        "invalid_target",
    ),
    "public client": ({"client": "public-app"}, 400, "unauthorized_client"),
    "client may not use the grant": (
        {"client": "orders-mcp", "client_id": "orders-mcp"},
        400,
        "unauthorized_client",
    ),
    "no client authentication": ({"client": None}, 401, "invalid_client"),
    "wrong client secret": ({"client": "wrong-secret"}, 401, "invalid_client"),
}


@pytest.mark.parametrize("case", list(NEGATIVE))
async def test_negative_matrix(enterprise: Enterprise, case: str) -> None:
    e = enterprise
    change, status, error = NEGATIVE[case]
    change = dict(change)
    now = e.r.clock()
    client = change.pop("client", "mcp-client")
    request_scope = change.pop("request_scope", None)
    request_resource = change.pop("request_resource", None)
    typ = change.pop("typ", "oauth-id-jag+jwt")
    if "exp_offset" in change:
        change["exp"] = int(now) + change.pop("exp_offset")
    if "iat_offset" in change:
        change["iat"] = int(now) + change.pop("iat_offset")
    kid = change.pop("kid", None)
    foreign = change.pop("foreign_key", False)
    body = claims_of(e.idp.id_jag(now, **change))
    assertion = e.idp.sign(body, typ=typ, kid=kid, key=_other_key() if foreign else None)
    extra = {k: v for k, v in (("scope", request_scope), ("resource", request_resource)) if v}
    data = jwt_bearer(assertion, **extra)
    if client is None:
        response = await e.r.http.post("/token", data={**data, "client_id": "mcp-client"})
    elif client == "wrong-secret":
        response = await e.r.http.post("/token", data=data, auth=("mcp-client", "mcpw_cs_nope"))
    elif client == "public-app":
        response = await e.r.http.post("/token", data={**data, "client_id": "public-app"})
    else:
        response = await e.r.http.post("/token", data=data, auth=e.basic(client))
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["error"] == error
    # Never an assertion in the answer, the audit trail or the description.
    assert assertion.split(".")[2] not in response.text
    lines = "\n".join(json.dumps(x) for x in e.r.audit.events())
    assert assertion.split(".")[2] not in lines and assertion.split(".")[1] not in lines
    assert not any(x["event"] == "token.issued_from_assertion" for x in e.r.audit.events())


async def test_a_replayed_jti_is_refused_and_audited(enterprise: Enterprise) -> None:
    e = enterprise
    assertion = e.idp.id_jag(e.r.clock())
    assert (await redeem(e, assertion)).status_code == 200
    replay = await redeem(e, assertion)
    assert replay.status_code == 400
    assert replay.json() == {
        "error": "invalid_grant",
        "error_description": "the assertion was already used",
    }
    event = next(x for x in e.r.audit.events() if x["event"] == "assertion.rejected")
    assert event["reason"] == "replayed" and event["outcome"] == "denied"
    assert event["detail"]["assertion_jti"] == claims_of(assertion)["jti"]  # type: ignore[index]
    assert event["detail"]["assertion_issuer"] == e.idp.url  # type: ignore[index]


async def test_a_refused_request_does_not_spend_the_jti(enterprise: Enterprise) -> None:
    """A request refused for its scope leaves the ID-JAG usable by a corrected request."""
    e = enterprise
    assertion = e.idp.id_jag(e.r.clock())
    wrong = await redeem(e, assertion, scope="payroll.read")
    assert wrong.json()["error"] == "invalid_scope"
    assert (await redeem(e, assertion, scope="orders.read")).status_code == 200


async def test_untrusted_issuer_is_not_named_and_unverified_jti_is_not_written(
    enterprise: Enterprise,
) -> None:
    e = enterprise
    response = await redeem(e, e.idp.id_jag(e.r.clock(), iss="https://evil.example"))
    assert response.json()["error_description"] == "the assertion's issuer is not trusted"
    event = next(x for x in e.r.audit.events() if x["event"] == "assertion.rejected")
    assert event["detail"]["assertion_issuer"] is None  # type: ignore[index]
    assert event["detail"]["assertion_jti"] is None  # type: ignore[index]
    forged = await redeem(e, e.idp.sign(claims_of(e.idp.id_jag(e.r.clock())), key=_other_key()))
    assert forged.json()["error_description"] == "the assertion's signature is invalid"
    events = [x for x in e.r.audit.events() if x["event"] == "assertion.rejected"]
    assert events[-1]["detail"]["assertion_jti"] is None  # type: ignore[index]
    assert events[-1]["detail"]["assertion_issuer"] == e.idp.url  # type: ignore[index]


@pytest.mark.parametrize(
    "assertion",
    ["", "not-a-jwt", "a.b.c", "e30.e30.", "x" * 20_000],
    ids=["empty", "garbage", "bad-base64", "empty-signature", "huge"],
)
async def test_malformed_assertions_get_an_oauth_error(
    enterprise: Enterprise, assertion: str
) -> None:
    response = await redeem(enterprise, assertion)
    assert response.status_code == 400
    assert response.json()["error"] in ("invalid_request", "invalid_grant")


@pytest.mark.parametrize("alg", ["none", "HS256"])
async def test_symmetric_and_unsigned_assertions_are_refused(
    enterprise: Enterprise, alg: str
) -> None:
    e = enterprise
    body = claims_of(e.idp.id_jag(e.r.clock()))
    # An HMAC over the "public" key material, or no signature at all.
    key = "k" * 32 if alg == "HS256" else ""
    token = jwt.encode(body, key, algorithm=alg, headers={"typ": "oauth-id-jag+jwt"})
    response = await redeem(e, token)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_metadata_advertises_the_grant_and_the_id_jag_profile(enterprise: Enterprise) -> None:
    doc = (await enterprise.r.http.get("/.well-known/oauth-authorization-server")).json()
    assert "urn:ietf:params:oauth:grant-type:jwt-bearer" in doc["grant_types_supported"]
    assert "urn:ietf:params:oauth:grant-type:token-exchange" in doc["grant_types_supported"]
    assert doc["authorization_grant_profiles_supported"] == [
        "urn:ietf:params:oauth:grant-profile:id-jag"
    ]


async def test_a_key_bound_id_jag_needs_a_dpop_proof_of_that_key(enterprise: Enterprise) -> None:
    """draft-ietf-oauth-identity-assertion-authz-grant §7.4: ``cnf.jkt`` in the ID-JAG and
    a DPoP proof of that key: a DPoP-bound token; a proof of another key, or none:
    ``invalid_grant``."""
    e = enterprise
    key = ec.generate_private_key(ec.SECP256R1())
    proof, jkt = dpop_proof(key, ISSUER + "/token")
    bound = e.idp.id_jag(e.r.clock(), cnf={"jkt": jkt})
    ok = await e.r.http.post(
        "/token", data=jwt_bearer(bound), auth=e.basic("mcp-client"), headers={"DPoP": proof}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["token_type"] == "DPoP"
    assert claims_of(ok.json()["access_token"])["cnf"] == {"jkt": jkt}

    thief, _ = dpop_proof(_other_key(), ISSUER + "/token")
    stolen = e.idp.id_jag(e.r.clock(), cnf={"jkt": jkt})
    refused = await e.r.http.post(
        "/token", data=jwt_bearer(stolen), auth=e.basic("mcp-client"), headers={"DPoP": thief}
    )
    assert refused.status_code == 400 and refused.json() == {
        "error": "invalid_grant",
        "error_description": "the ID-JAG is bound to a DPoP key this request does not prove",
    }
    # The refused request did not spend the ID-JAG: its holder still redeems it.
    holder, _ = dpop_proof(key, ISSUER + "/token")
    again = await e.r.http.post(
        "/token", data=jwt_bearer(stolen), auth=e.basic("mcp-client"), headers={"DPoP": holder}
    )
    assert again.status_code == 200, again.text


async def test_an_unbound_id_jag_with_a_dpop_proof_gets_a_bound_token(
    enterprise: Enterprise,
) -> None:
    e = enterprise
    proof, jkt = dpop_proof(_other_key(), ISSUER + "/token")
    response = await e.r.http.post(
        "/token",
        data=jwt_bearer(e.idp.id_jag(e.r.clock())),
        auth=e.basic("mcp-client"),
        headers={"DPoP": proof},
    )
    assert response.status_code == 200 and response.json()["token_type"] == "DPoP"
    assert claims_of(response.json()["access_token"])["cnf"] == {"jkt": jkt}
