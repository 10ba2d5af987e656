"""Workload identity federation (SEP-1933): a platform-issued JWT (here shaped like a
Kubernetes projected service-account token) instead of a client secret, mapped by a
workload rule to a client, as the JWT bearer grant and as a client assertion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.enterprise.conftest import WORKLOAD_SUBJECT, Enterprise, federation, provision
from tests.enterprise.support import CLIENT_ASSERTION_TYPE, claims_of, jwt_bearer, serve_issuer
from tests.server.conftest import RESOURCE, start

ISSUER = "http://127.0.0.1:8400"


async def grant(e: Enterprise, assertion: str, **extra: str) -> httpx.Response:
    return await e.r.http.post("/token", data=jwt_bearer(assertion, resource=RESOURCE, **extra))


async def test_a_workload_jwt_is_the_clients_credential(enterprise: Enterprise) -> None:
    e = enterprise
    assertion = e.platform.workload(e.r.clock())
    response = await grant(e, assertion, client_id="backfill")
    assert response.status_code == 200, response.text
    body = response.json()
    assert "refresh_token" not in body
    # The client may have orders.read and orders.write; the rule allows orders.read.
    assert body["scope"] == "orders.read"
    claims = claims_of(body["access_token"])
    assert (claims["sub"], claims["client_id"], claims["aud"]) == ("backfill", "backfill", RESOURCE)
    event = next(x for x in e.r.audit.events() if x["event"] == "token.issued_from_assertion")
    assert event["detail"] == {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "profile": "workload",
        "assertion_issuer": e.platform.url,
        "assertion_jti": claims_of(assertion)["jti"],
        "workload_subject": WORKLOAD_SUBJECT,
        "rule": "backfill",
    }
    lines = "\n".join(json.dumps(x) for x in e.r.audit.events())
    assert assertion.split(".")[2] not in lines


async def test_without_client_id_the_rule_names_the_client(enterprise: Enterprise) -> None:
    e = enterprise
    response = await grant(e, e.platform.workload(e.r.clock()))
    assert response.status_code == 200, response.text
    assert claims_of(response.json()["access_token"])["client_id"] == "backfill"


async def test_a_workload_jwt_as_client_assertion_for_client_credentials(
    enterprise: Enterprise,
) -> None:
    e = enterprise
    response = await e.r.http.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": e.platform.workload(e.r.clock()),
            "scope": "orders.read orders.write",
            "resource": RESOURCE,
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "orders.read"  # bounded by the rule


async def test_a_client_without_credentials_gets_no_client_credentials_token(
    enterprise: Enterprise,
) -> None:
    e = enterprise
    response = await e.r.http.post(
        "/token", data={"grant_type": "client_credentials", "client_id": "backfill"}
    )
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"


def _other_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


NEGATIVE: dict[str, tuple[dict[str, Any], int, str]] = {
    "wrong typ": ({"typ": "at+jwt"}, 400, "invalid_grant"),
    "aud array of two": ({"aud": [ISSUER, "https://other.example"]}, 400, "invalid_grant"),
    "aud mismatch": ({"aud": "https://other.example"}, 400, "invalid_grant"),
    "client_id mismatch": ({"client_id": "mcp-client"}, 400, "invalid_grant"),
    "expired": ({"exp_offset": -120}, 400, "invalid_grant"),
    "not yet valid": ({"nbf_offset": 600}, 400, "invalid_grant"),
    "untrusted issuer": ({"iss": "https://evil.example"}, 400, "invalid_grant"),
    "issuer trusted only for ID-JAGs": ({"idp": True}, 400, "invalid_grant"),
    "bad signature": ({"foreign_key": True}, 400, "invalid_grant"),
    "no jti": ({"jti": None}, 400, "invalid_grant"),
    "key-bound (cnf)": (
        {"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}},
        400,
        "invalid_grant",
    ),
    "subject matches no rule": ({"sub": "system:serviceaccount:batch:other"}, 400, "invalid_grant"),
    "claim differs": ({"namespace": "prod"}, 400, "invalid_grant"),
    "claim missing": ({"namespace": None}, 400, "invalid_grant"),
    "unknown resource": ({"resource": "https://unknown.example/mcp"}, 400, "invalid_target"),
    "scope not allowed": ({"scope": "orders.write"}, 400, "invalid_scope"),
    "scope unknown": ({"scope": "payroll.read"}, 400, "invalid_scope"),
    "as client assertion, aud mismatch": (
        {"aud": "https://other.example", "as_client_assertion": True},
        401,
        "invalid_client",
    ),
}


@pytest.mark.parametrize("case", list(NEGATIVE))
async def test_negative_matrix(enterprise: Enterprise, case: str) -> None:
    e = enterprise
    change, status, error = NEGATIVE[case]
    change = dict(change)
    now = e.r.clock()
    typ = change.pop("typ", None)
    form = {"client_id": change.pop("client_id", "backfill"), "resource": RESOURCE}
    for name in ("resource", "scope"):
        if name in change:
            form[name] = change.pop(name)
    if "exp_offset" in change:
        change["exp"] = int(now) + change.pop("exp_offset")
    if "nbf_offset" in change:
        change["nbf"] = int(now) + change.pop("nbf_offset")
    foreign = change.pop("foreign_key", False)
    as_client_assertion = change.pop("as_client_assertion", False)
    if change.pop("idp", False):
        change["iss"] = e.idp.url
    body = claims_of(e.platform.workload(now, **change))
    assertion = e.platform.sign(body, typ=typ, key=_other_key() if foreign else None)
    if as_client_assertion:
        data = {
            "grant_type": "client_credentials",
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": assertion,
            **form,
        }
    else:
        data = jwt_bearer(assertion, **form)
    response = await e.r.http.post("/token", data=data)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert assertion.split(".")[2] not in response.text
    lines = "\n".join(json.dumps(x) for x in e.r.audit.events())
    assert assertion.split(".")[2] not in lines and assertion.split(".")[1] not in lines
    assert not any(x["event"] == "token.issued_from_assertion" for x in e.r.audit.events())


async def test_a_replayed_workload_jwt_is_refused(enterprise: Enterprise) -> None:
    e = enterprise
    assertion = e.platform.workload(e.r.clock())
    assert (await grant(e, assertion)).status_code == 200
    replay = await grant(e, assertion)
    assert replay.status_code == 400
    assert replay.json()["error_description"] == "the assertion was already used"
    event = [x for x in e.r.audit.events() if x["event"] == "assertion.rejected"][-1]
    assert event["reason"] == "replayed" and event["client_id"] == "backfill"


async def test_refusals_name_the_rule_and_the_claim_never_the_value(
    enterprise: Enterprise,
) -> None:
    e = enterprise
    response = await grant(e, e.platform.workload(e.r.clock(), namespace="secret-ns-value"))
    description = response.json()["error_description"]
    assert description == "no workload rule matches (backfill: claim namespace differs)"
    assert "secret-ns-value" not in response.text
    other = await grant(e, e.platform.workload(e.r.clock(), aud=[ISSUER, ISSUER + "/token"]))
    assert other.json()["error_description"] == (
        "no workload rule matches (backfill: audience is not exactly the expected one)"
    )


async def test_a_disabled_client_is_not_served_through_its_rule(enterprise: Enterprise) -> None:
    e = enterprise
    await e.r.server.disable_client("backfill")
    response = await grant(e, e.platform.workload(e.r.clock()))
    assert response.status_code == 400
    assert response.json()["error_description"] == (
        "the client of workload rule backfill is unknown or disabled"
    )


async def test_a_client_authenticated_by_its_workload_jwt_may_redeem_an_id_jag(
    enterprise: Enterprise,
) -> None:
    """The workload JWT as client assertion authenticates; the grant's assertion (an
    ID-JAG for that client) is judged as an ID-JAG, not skipped."""
    e = enterprise
    now = e.r.clock()
    data = {
        **jwt_bearer(e.idp.id_jag(now, client_id="backfill", scope="orders.read")),
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": e.platform.workload(now),
    }
    response = await e.r.http.post("/token", data=data)
    assert response.status_code == 200, response.text
    user = await e.r.server.store.users.by_upstream(e.idp.url, "employee-7")
    assert user is not None
    assert claims_of(response.json()["access_token"])["sub"] == user.id
    wrong = {**data, "assertion": e.idp.id_jag(now, client_id="mcp-client")}
    wrong["client_assertion"] = e.platform.workload(now)
    refused = await e.r.http.post("/token", data=wrong)
    assert refused.json()["error_description"] == "the ID-JAG was issued to another client"


async def test_a_platform_without_single_use_tokens(tmp_path: Path) -> None:
    """``single_use = false``: the same workload JWT serves every renewal until it
    expires (a platform that reuses its tokens until they rotate)."""
    async with serve_issuer() as idp, serve_issuer() as platform:
        config = federation(idp, platform)
        config["trusted_issuers"][1]["single_use"] = False
        url = f"sqlite+aiosqlite:///{tmp_path / 'reuse.db'}"
        async for r in start(url, tmp_path, **config):
            e = Enterprise(r, idp, platform, await provision(r))
            assertion = platform.workload(r.clock(), jti=None)
            for _ in range(3):
                response = await grant(e, assertion)
                assert response.status_code == 200, response.text
