"""Authorization beyond scopes: a Casbin policy over (subject or client, roles, tool).

The shipped model (``POLICY_MODEL``) grants a request when any of the caller's principals
-- ``user:<sub>``, ``client:<client_id>``, ``role:<role>`` (from the token's role claims)
-- is allowed the target, and no ``deny`` rule matches (deny wins). Targets are written
``tool:<name>``, ``resource:<uri>`` or ``prompt:<name>`` and may be globs. Extra
attributes (such as a tenant claim) are matched with ``keyMatch``-style patterns on the
``tenant`` column, e.g. tenant isolation: ``p, role:agent, tool:*, tenant:acme, allow``
only lets tokens whose ``tenant`` claim is ``acme`` through.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, Protocol

from mcpward.guard._identity import Identity
from mcpward.guard._jsonrpc import Kind

POLICY_MODEL = """
[request_definition]
r = sub, obj, tenant

[policy_definition]
p = sub, obj, tenant, eft

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = (globMatch(r.sub, p.sub) || g(r.sub, p.sub)) && globMatch(r.obj, p.obj) \
    && globMatch(r.tenant, p.tenant)
"""


class Policy(Protocol):
    async def allows(self, identity: Identity, kind: Kind, target: str) -> bool: ...


class CasbinPolicy:
    """A Casbin enforcer with the shipped model. ``adapter`` is a CSV policy path or any
    Casbin adapter (e.g. ``casbin_sqlalchemy_adapter``); with a file, the policy reloads
    when the file changes (checked at most every ``reload_interval`` seconds)."""

    def __init__(
        self,
        adapter: str | Path | Any,
        *,
        tenant_claim: str = "tenant",
        reload_interval: float = 2.0,
        model: str = POLICY_MODEL,
    ) -> None:
        import casbin

        self._path = Path(adapter) if isinstance(adapter, str | Path) else None
        self._model = casbin.Enforcer.new_model(text=model)
        if self._path is not None:
            from casbin.persist.adapters import FileAdapter

            adapter = FileAdapter(str(self._path))
        self._enforcer = casbin.Enforcer(self._model, adapter)
        self._tenant_claim = tenant_claim
        self._interval = reload_interval
        self._mtime = self._stat()
        self._checked = 0.0

    def _stat(self) -> tuple[int, int]:
        if self._path is None:
            return (0, 0)
        try:
            st = os.stat(self._path)
        except OSError:
            return (0, 0)
        return (st.st_mtime_ns, st.st_size)

    def reload(self) -> None:
        self._enforcer.load_policy()
        self._mtime = self._stat()

    def _maybe_reload(self) -> None:
        if self._path is None:
            return
        now = asyncio.get_running_loop().time()
        if now - self._checked < self._interval:
            return
        self._checked = now
        if self._stat() != self._mtime:
            self.reload()

    async def allows(self, identity: Identity, kind: Kind, target: str) -> bool:
        self._maybe_reload()
        obj = f"{kind}:{target}"
        tenant_value = identity.claims.get(self._tenant_claim)
        tenant = f"tenant:{tenant_value}" if isinstance(tenant_value, str) else "tenant:"
        principals = [f"user:{identity.subject}", f"client:{identity.client_id}"]
        principals += [f"role:{role}" for role in sorted(identity.roles)]
        # Deny wins across principals: any principal denied means denied.
        allowed = False
        for principal in principals:
            if self._denied(principal, obj, tenant):
                return False
            if self._enforcer.enforce(principal, obj, tenant):
                allowed = True
        return allowed

    def _denied(self, principal: str, obj: str, tenant: str) -> bool:
        import casbin.util

        for rule in self._enforcer.get_policy():
            if (
                len(rule) >= 4
                and rule[3] == "deny"
                and casbin.util.glob_match(principal, rule[0])
                and casbin.util.glob_match(obj, rule[1])
                and casbin.util.glob_match(tenant, rule[2])
            ):
                return True
        return False
