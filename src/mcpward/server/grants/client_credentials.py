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
        client = request.authenticated.client
        if client.is_public:
            raise UnauthorizedClient("client_credentials needs a confidential client")
        resource = server.resolve_resource(request.resources)
        requested = _scopes.parse(request.form.get("scope"))
        granted = _scopes.grantable(requested, resource, client.allowed_scope)
        return issue(
            server,
            event="token.issued",
            client_id=client.client_id,
            subject=client.client_id,
            resource=resource.uri,
            scopes=granted,
            requested=requested,
            jkt=request.jkt,
        )
