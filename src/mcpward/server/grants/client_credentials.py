"""The client credentials grant (RFC 6749 §4.4; MCP SEP-1046): a confidential client
gets a token for itself, no user involved."""

from __future__ import annotations

from typing import Any, ClassVar

from mcpward.server import _scopes
from mcpward.server.core import AuthorizationServer
from mcpward.server.errors import UnauthorizedClient
from mcpward.server.grants._common import TokenRequest, issue


class ClientCredentials:
    grant_type: ClassVar[str] = "client_credentials"

    async def respond(self, server: AuthorizationServer, request: TokenRequest) -> dict[str, Any]:
        authenticated = request.authenticated
        client = authenticated.client
        # A credential must have been shown: a secret, a key, or a workload JWT (SEP-1933)
        # whose rule names this client.
        if authenticated.method == "none":
            raise UnauthorizedClient("client_credentials needs a confidential client")
        resource = server.resolve_resource(request.resources)
        requested = _scopes.parse(request.form.get("scope"))
        granted = _scopes.grantable(requested, resource, client.allowed_scope)
        workload = authenticated.workload
        if workload is not None:
            granted = _scopes.within(
                granted,
                workload.rule.scopes,
                f"workload rule {workload.rule.name} allows none of the requested scopes",
            )
        return issue(
            server,
            event="token.issued",
            client_id=client.client_id,
            subject=client.client_id,
            resource=resource.uri,
            scopes=granted,
            requested=requested,
            jkt=request.jkt,
            detail=workload.audit_detail() if workload is not None else None,
        )
