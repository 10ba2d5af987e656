"""`mcpward serve --demo`, the embedded default behind `make run`, run as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.services import free_port


@contextmanager
def running_serve(
    data_dir: Path,
    port: int,
    extra_env: dict[str, str] | None = None,
    verify: ssl.SSLContext | None = None,
) -> Iterator[subprocess.Popen[str]]:
    env = {
        **os.environ,
        "MCPWARD_DATA_DIR": str(data_dir),
        "MCPWARD_CONFIG": str(data_dir / "absent.toml"),
        **(extra_env or {}),
    }
    scheme = "https" if verify is not None else "http"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcpward", "serve", "--demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"{scheme}://127.0.0.1:{port}/readyz", verify=verify or True)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("mcpward serve did not become ready")
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def test_first_start_creates_demo_credentials_once(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running_serve(tmp_path, port) as proc:
        demo = json.loads((tmp_path / "demo.json").read_text())
        assert stat.S_IMODE((tmp_path / "demo.json").stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "data-key").stat().st_mode) == 0o600
        assert demo["issuer"] == base and demo["resource"] == base + "/mcp"

        meta = httpx.get(base + "/.well-known/oauth-authorization-server").json()
        assert meta["issuer"] == base
        resp = httpx.post(
            base + "/token",
            data={"grant_type": "client_credentials", "resource": demo["resource"]},
            auth=(demo["client_id"], demo["client_secret"]),
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["scope"] == "orders.read"
    _, stderr = proc.communicate()
    # SIGTERM: uvicorn finishes requests in flight, shuts the app down, then re-raises the
    # signal so the exit status still says why the process ended.
    assert proc.returncode in (0, -signal.SIGTERM)
    assert "Finished server process" in stderr
    assert demo["client_secret"] in stderr  # shown once, on first start ...
    assert demo["password"] in stderr

    with running_serve(tmp_path, port) as proc:
        pass
    _, stderr = proc.communicate()
    assert demo["client_secret"] not in stderr  # ... and never again
    assert "demo.json" in stderr


async def test_demo_mcp_server_is_guarded_and_honours_cli_revocation(tmp_path: Path) -> None:
    """The demo MCP server of the source document behind the guard, with a real `mcp` SDK
    client; a revocation made by the CLI in another process reaches it at the next poll."""
    import asyncio

    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running_serve(tmp_path, port):
        demo = json.loads((tmp_path / "demo.json").read_text())
        async with httpx.AsyncClient(base_url=base) as http:
            anonymous = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
            assert anonymous.status_code == 401
            challenge = anonymous.headers["www-authenticate"]
            assert 'resource_metadata="' + base + "/.well-known/oauth-protected-resource/mcp" in (
                challenge
            )
            prm = (await http.get("/.well-known/oauth-protected-resource/mcp")).json()
            assert prm["resource"] == demo["resource"]
            assert prm["authorization_servers"] == [base]
            token = (
                await http.post(
                    "/token",
                    data={"grant_type": "client_credentials", "resource": demo["resource"]},
                    auth=(demo["client_id"], demo["client_secret"]),
                )
            ).json()["access_token"]

        client = httpx2.AsyncClient(headers={"authorization": f"Bearer {token}"}, timeout=30)
        async with Client(streamable_http_client(f"{base}/mcp", http_client=client)) as mcp:
            tools = {t.name: t.meta or {} for t in (await mcp.list_tools()).tools}
            assert tools["search_orders"]["io.mcpward/scopes"]["granted"] is True
            # Listed, so the model can ask for it and step up; this token cannot call it.
            assert tools["refund_order"]["io.mcpward/scopes"]["granted"] is False
            result = await mcp.call_tool("search_orders", {"query": "acme"})
            assert not result.is_error
            with pytest.raises(MCPError):
                await mcp.call_tool("refund_order", {"order_id": "A-1001"})

            env = {**os.environ, "MCPWARD_DATA_DIR": str(tmp_path)}
            env["MCPWARD_CONFIG"] = str(tmp_path / "absent.toml")
            await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "mcpward", "tokens", "revoke", "--client", "demo-agent"],
                env=env,
                check=True,
                capture_output=True,
            )
            deadline = time.monotonic() + 10
            while True:
                try:
                    await mcp.call_tool("search_orders", {"query": "acme"})
                except MCPError:
                    break
                assert time.monotonic() < deadline, "revocation did not reach the guard"
                await asyncio.sleep(0.1)


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, made here: TLS served directly, without a proxy."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_serves_tls_directly(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    port = free_port()
    issuer = f"https://127.0.0.1:{port}"
    verify = ssl.create_default_context(cafile=str(cert))
    env = {
        "MCPWARD_ISSUER": issuer,
        "MCPWARD_TLS_CERT_FILE": str(cert),
        "MCPWARD_TLS_KEY_FILE": str(key),
    }
    with running_serve(tmp_path, port, env, verify=verify):
        meta = httpx.get(issuer + "/.well-known/oauth-authorization-server", verify=verify)
        assert meta.json()["token_endpoint"] == issuer + "/token"
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/healthz")


def test_browser_based_clients_can_read_the_challenge(tmp_path: Path) -> None:
    """MCP Inspector in a browser: the preflight passes and the 401's WWW-Authenticate is
    readable by the page (CORS outside the guard)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    origin = {"Origin": "http://localhost:6274"}
    with running_serve(tmp_path, port):
        preflight = httpx.options(
            base + "/mcp",
            headers={
                **origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, mcp-protocol-version",
            },
        )
        assert preflight.status_code == 200
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        challenge = httpx.post(base + "/mcp", json={}, headers=origin)
        assert challenge.status_code == 401
        assert challenge.headers["access-control-allow-origin"] == "*"
        exposed = challenge.headers["access-control-expose-headers"].lower()
        assert "www-authenticate" in exposed
        assert "mcp-session-id" in exposed


def _register(base: str, forwarded_for: str) -> int:
    return httpx.post(
        base + "/register",
        json={"redirect_uris": ["http://127.0.0.1/callback"], "token_endpoint_auth_method": "none"},
        headers={"X-Forwarded-For": forwarded_for},
    ).status_code


def test_registration_limit_and_forwarded_headers(tmp_path: Path) -> None:
    """Anonymous registration is limited per client address. X-Forwarded-For names that
    address only when it comes from a configured trusted proxy."""
    limit = {"MCPWARD_REGISTRATIONS_PER_HOUR": "2"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running_serve(tmp_path / "untrusted", port, limit):
        # No trusted proxy: the header is ignored, every request is 127.0.0.1.
        assert [_register(base, f"203.0.113.{i}") for i in range(3)] == [201, 201, 429]

    trusted = {**limit, "MCPWARD_TRUSTED_PROXIES": '["127.0.0.1"]'}
    with running_serve(tmp_path / "trusted", port, trusted):
        assert [_register(base, f"203.0.113.{i}") for i in range(3)] == [201, 201, 201]
        assert [_register(base, "198.51.100.7") for _ in range(3)] == [201, 201, 429]
