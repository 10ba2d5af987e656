"""Enterprise-managed authorization (MCP extension SEP-990, "cross-app access").

The user signed in to the enterprise IdP once; the client trades that ID token at the IdP
for an Identity Assertion JWT Authorization Grant (ID-JAG, RFC 8693 token exchange) aimed
at the MCP server's authorization server, then redeems it there with the JWT bearer grant
(RFC 7523 §2.1). No browser, no consent screen: the IdP's policy decides.
"""

from __future__ import annotations

from typing import Any

from mcpward.client._agent import JWT_BEARER, AgentAuth
from mcpward.client._discovery import ServerMetadata
from mcpward.client._secret_source import SecretSource, StaticSecret, read_secret
from mcpward.client._token_endpoint import ClientAuth, post_form
from mcpward.client.errors import TokenEndpointError

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
ID_JAG = "urn:ietf:params:oauth:token-type:id-jag"


class EnterpriseAuth(AgentAuth):
    """`AgentAuth` whose grant is an ID-JAG obtained from the enterprise IdP.

    `client_id` / `client_secret` authenticate at the MCP server's authorization server;
    `idp_client_id` (and optional `idp_client_secret`) at the IdP's token endpoint.
    """

    def __init__(
        self,
        server_url: str,
        *,
        id_token: SecretSource | str,
        idp_token_endpoint: str,
        idp_client_id: str,
        idp_client_secret: SecretSource | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(server_url, **kwargs)
        self._id_token = StaticSecret(id_token) if isinstance(id_token, str) else id_token
        if isinstance(idp_client_secret, str):
            idp_client_secret = StaticSecret(idp_client_secret)
        self._idp_secret = idp_client_secret
        self.idp_token_endpoint = idp_token_endpoint
        self.idp_client_id = idp_client_id

    async def _grant(self, server: ServerMetadata, scope: str | None) -> dict[str, str | None]:
        secret = await read_secret(self._idp_secret) if self._idp_secret is not None else None
        idp_client = ClientAuth(
            self.idp_client_id, "client_secret_basic" if secret else "none", secret
        )
        answer = await post_form(
            self._client(),
            self.idp_token_endpoint,
            {
                "grant_type": TOKEN_EXCHANGE,
                "requested_token_type": ID_JAG,
                "subject_token": await read_secret(self._id_token),
                "subject_token_type": ID_TOKEN,
                "audience": server.issuer,
                "resource": self.resource,
                "scope": scope,
            },
            idp_client,
            now=self.clock(),
        )
        assertion = answer.get("access_token")
        if answer.get("issued_token_type") != ID_JAG or not isinstance(assertion, str):
            raise TokenEndpointError("the IdP's token exchange did not return an ID-JAG")
        return {"grant_type": JWT_BEARER, "assertion": assertion, "scope": scope}
