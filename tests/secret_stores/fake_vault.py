"""A stand-in for HashiCorp Vault's KV version 2 HTTP API, run as its own process.

No Vault server can be installed here: Debian does not package it, the PyPI and npm
packages named "vault" are unrelated projects, and HashiCorp's binary comes from its own
site, which this machine cannot reach. So the tests talk to this server, which implements
the documented surface mcpward uses, in Vault's own shapes, and nothing more:

- ``GET /v1/{mount}/data/{path}[?version=N]``: ``{"data": {"data", "metadata"}}``; 404
  ``{"errors": []}`` for a path never written; 404 ``{"errors": ["no handler for route
  ..."]}`` when no engine is mounted there.
- ``POST|PUT /v1/{mount}/data/{path}`` with ``{"options": {"cas": N}, "data": {...}}``: a
  new version; ``cas`` 0 writes only a path never written, N only if N is the latest
  version, else 400 ``check-and-set parameter did not match the current version``; the
  oldest versions beyond ``max_versions`` (10) are dropped.
- ``X-Vault-Token`` on every request, checked against ACL policies written in Vault's HCL
  (``path "secret/data/x/*" { capabilities = ["create", "read", "update"] }``, a trailing
  ``*`` matching any suffix and ``+`` one segment); writing a path needs ``create`` if it
  was never written and ``update`` otherwise; a refusal is 403 ``permission denied``.

Run: ``python -m tests.secret_stores.fake_vault CONFIG.json``; it prints ``{"port": N}``
once listening. CONFIG: ``{"mounts": [...], "tokens": {"TOKEN": "HCL policy" | "root"}}``.
"""

from __future__ import annotations

import datetime
import json
import re
import socket
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

MAX_VERSIONS = 10
_RULE = re.compile(r'path\s+"([^"]+)"\s*\{\s*capabilities\s*=\s*\[([^\]]*)\]\s*\}')


def parse_policy(hcl: str) -> list[tuple[str, set[str]]]:
    """The ``path`` blocks of a Vault ACL policy: (glob, capabilities)."""
    return [
        (glob, {c.strip().strip('"') for c in caps.split(",") if c.strip()})
        for glob, caps in _RULE.findall(hcl)
    ]


def _matches(glob: str, path: str) -> bool:
    pattern = "".join(
        "[^/]+" if part == "+" else re.escape(part) for part in re.split(r"(\+)", glob)
    )
    if glob.endswith("*"):
        pattern = pattern[: -len(re.escape("*"))] + ".*"
    return re.fullmatch(pattern, path) is not None


def allowed(rules: list[tuple[str, set[str]]] | None, path: str, capability: str) -> bool:
    """Vault picks the most specific matching rule; here, the longest matching glob."""
    if rules is None:  # the root token
        return True
    matching = [(glob, caps) for glob, caps in rules if _matches(glob, path)]
    if not matching:
        return False
    _, caps = max(matching, key=lambda rule: len(rule[0]))
    return capability in caps and "deny" not in caps


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Secret:
    versions: dict[int, tuple[dict[str, Any], str]] = field(default_factory=dict)
    current: int = 0


class Vault:
    def __init__(self, mounts: list[str], tokens: dict[str, str]) -> None:
        self.mounts = set(mounts)
        self.policies = {
            token: None if hcl == "root" else parse_policy(hcl) for token, hcl in tokens.items()
        }
        self.secrets: dict[tuple[str, str], Secret] = {}

    async def handle(self, request: Request) -> Response:
        token = request.headers.get("x-vault-token")
        if token not in self.policies:
            return _errors(403, "permission denied")
        rules = self.policies[token]
        mount, _, rest = request.path_params["rest"].partition("/")
        kind, _, path = rest.partition("/")
        if mount not in self.mounts or kind != "data" or not path:
            full = request.path_params["rest"]
            return _errors(404, f'no handler for route "{full}". route entry not found.')
        acl_path = f"{mount}/data/{path}"
        secret = self.secrets.get((mount, path))
        if request.method == "GET":
            if not allowed(rules, acl_path, "read"):
                return _errors(403, "permission denied")
            return self._read(secret, request.query_params.get("version"))
        capability = "update" if secret is not None else "create"
        if not allowed(rules, acl_path, capability):
            return _errors(403, "permission denied")
        body = await request.json()
        return self._write(mount, path, secret, body)

    def _read(self, secret: Secret | None, version: str | None) -> Response:
        number = int(version) if version else (secret.current if secret else 0)
        if secret is None or number not in secret.versions:
            return _errors(404)
        data, created = secret.versions[number]
        metadata = {
            "version": number,
            "created_time": created,
            "deletion_time": "",
            "destroyed": False,
            "custom_metadata": None,
        }
        return _ok({"data": data, "metadata": metadata})

    def _write(
        self, mount: str, path: str, secret: Secret | None, body: dict[str, Any]
    ) -> Response:
        data = body.get("data")
        if not isinstance(data, dict):
            return _errors(400, "no data provided")
        options = body.get("options") or {}
        current = secret.current if secret else 0
        if "cas" in options and int(options["cas"]) != current:
            return _errors(400, "check-and-set parameter did not match the current version")
        secret = secret or self.secrets.setdefault((mount, path), Secret())
        secret.current += 1
        created = _now()
        secret.versions[secret.current] = (data, created)
        for old in [v for v in secret.versions if v <= secret.current - MAX_VERSIONS]:
            del secret.versions[old]
        return _ok(
            {
                "version": secret.current,
                "created_time": created,
                "deletion_time": "",
                "destroyed": False,
                "custom_metadata": None,
            }
        )


def _ok(data: dict[str, Any]) -> Response:
    return JSONResponse(
        {
            "request_id": str(uuid.uuid4()),
            "lease_id": "",
            "renewable": False,
            "lease_duration": 0,
            "data": data,
            "wrap_info": None,
            "warnings": None,
            "auth": None,
            "mount_type": "kv",
        }
    )


def _errors(status: int, *errors: str) -> Response:
    return JSONResponse({"errors": list(errors)}, status_code=status)


def app(vault: Vault) -> Starlette:
    methods = ["GET", "POST", "PUT"]
    return Starlette(routes=[Route("/v1/{rest:path}", vault.handle, methods=methods)])


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    vault = Vault(config["mounts"], config["tokens"])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # connections wait in the backlog until uvicorn accepts them
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    server = uvicorn.Server(uvicorn.Config(app(vault), log_level="warning", access_log=False))
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
