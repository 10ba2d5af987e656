"""Malformed credentials and misplaced secrets at the token, revocation and
introspection endpoints: the RFC's error, never a 500, and nothing a client sent that is
not a registered client id reaches the audit trail."""

from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server.conftest import RESOURCE, Running

ENDPOINTS = ["/token", "/revoke", "/introspect"]
FORM = {
    "/token": {"grant_type": "client_credentials", "resource": RESOURCE},
    "/revoke": {"token": "x"},
    "/introspect": {"token": "x"},
}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    "header",
    [
        b"Basic \xff\xfe\xfd",  # not ASCII at all (was a 500)
        b"Basic Zm9vOmJhcsOp",  # UTF-8 "foo:bar\u00e9": well-formed, unknown client
        b"Basic " + base64.b64encode(b"\xff\xfe:\xfd"),  # base64 of bytes that are not UTF-8
        b"Basic " + base64.b64encode(b"no-colon"),
        b"Basic ====",
        b"Basic",
    ],
)
async def test_malformed_basic_credentials(running: Running, endpoint: str, header: bytes) -> None:
    resp = await running.http.post(
        endpoint, data=FORM[endpoint], headers={b"authorization": header}
    )
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"] == "invalid_client"


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    raw=st.lists(
        # Any byte a header value may carry (RFC 9110 §5.5: VCHAR, obs-text, inner spaces).
        st.integers(0x21, 0xFF).filter(lambda b: b != 0x7F) | st.just(0x20),
        min_size=1,
    )
    .map(bytes)
    .filter(lambda b: b.strip() == b)
)
async def test_any_bytes_after_basic_are_never_a_500(sqlite_running: Running, raw: bytes) -> None:
    for endpoint in ENDPOINTS:
        resp = await sqlite_running.http.post(
            endpoint, data=FORM[endpoint], headers={b"authorization": b"Basic " + raw}
        )
        assert resp.status_code in (400, 401), (endpoint, raw, resp.text)


async def test_a_secret_in_client_id_never_reaches_the_audit(running: Running) -> None:
    """A client that puts its secret into client_id (or any unregistered value): the
    failed authentication is audited without the value."""
    secret = await running.confidential_client()
    assert secret
    for data in (
        {"grant_type": "client_credentials", "client_id": secret},
        {"grant_type": "client_credentials", "client_id": secret, "client_secret": secret},
    ):
        resp = await running.http.post("/token", data=data)
        assert resp.status_code == 401
    resp = await running.http.post(
        "/token", data={"grant_type": "client_credentials"}, auth=(secret, secret)
    )
    assert resp.status_code == 401
    failures = [e for e in running.audit.events() if e["event"] == "client.authentication_failed"]
    assert len(failures) == 3
    assert all("client_id" not in e for e in failures)
    assert all(e["detail"]["registered_client"] is False for e in failures)  # type: ignore[index]
    assert all(secret not in line for line in running.audit.lines)


async def test_a_registered_client_is_named_when_its_authentication_fails(
    running: Running,
) -> None:
    secret = await running.confidential_client()
    assert secret
    resp = await running.http.post(
        "/token", data={"grant_type": "client_credentials"}, auth=("agent", "mcpw_cs_wrong")
    )
    assert resp.status_code == 401
    [failure] = [e for e in running.audit.events() if e["event"] == "client.authentication_failed"]
    assert failure["client_id"] == "agent"
