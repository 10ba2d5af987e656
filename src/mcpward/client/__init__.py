"""mcpward client: sign a person in once, keep an agent's token fresh.

Both classes are `httpx.Auth` and `httpx2.Auth` (the mcp SDK's HTTP client), async and sync::

    auth = HumanAuth("https://mcp.example.com/mcp")
    async with httpx2.AsyncClient(auth=auth) as http:
        async with Client(streamable_http_client(url, http_client=http)) as mcp: ...
"""

from mcpward._secret_stores import SecretStoreError
from mcpward.client._agent import AgentAuth
from mcpward.client._authorization_code import AuthorizeHandler
from mcpward.client._aws_secrets_manager import AwsSecret, AwsSecretsManagerStore
from mcpward.client._discovery import Discovery, ResourceMetadata, ServerMetadata, discover
from mcpward.client._enterprise import EnterpriseAuth
from mcpward.client._human import HumanAuth, SessionInfo, open_browser
from mcpward.client._pkce import Pkce, code_challenge
from mcpward.client._registration import Registration
from mcpward.client._secret_source import (
    EnvSecret,
    FileSecret,
    KeyringSecret,
    SecretSource,
    StaticSecret,
)
from mcpward.client._token_endpoint import AuthMethod, ClientAuth, TokenSet
from mcpward.client._token_store import (
    FileStore,
    KeyringStore,
    MemoryStore,
    SharedTokenStore,
    StoredSession,
    TokenStore,
    default_store,
)
from mcpward.client._vault_kv import VaultSecret, VaultStore
from mcpward.client.errors import (
    AuthorizationError,
    ClientError,
    DiscoveryError,
    InvalidClient,
    InvalidGrant,
    LoginRequired,
    LoginTimeout,
    RegistrationError,
    StepUpLimitReached,
    TokenEndpointError,
)

__all__ = [
    "AgentAuth",
    "AuthMethod",
    "AuthorizationError",
    "AuthorizeHandler",
    "AwsSecret",
    "AwsSecretsManagerStore",
    "ClientAuth",
    "ClientError",
    "Discovery",
    "DiscoveryError",
    "EnterpriseAuth",
    "EnvSecret",
    "FileSecret",
    "FileStore",
    "HumanAuth",
    "InvalidClient",
    "InvalidGrant",
    "KeyringSecret",
    "KeyringStore",
    "LoginRequired",
    "LoginTimeout",
    "MemoryStore",
    "Pkce",
    "Registration",
    "RegistrationError",
    "ResourceMetadata",
    "SecretSource",
    "SecretStoreError",
    "ServerMetadata",
    "SessionInfo",
    "SharedTokenStore",
    "StaticSecret",
    "StepUpLimitReached",
    "StoredSession",
    "TokenEndpointError",
    "TokenSet",
    "TokenStore",
    "VaultSecret",
    "VaultStore",
    "code_challenge",
    "default_store",
    "discover",
    "open_browser",
]
