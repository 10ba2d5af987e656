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
from mcpward.client._dpop import request_headers
from mcpward.client._enterprise import EnterpriseAuth
from mcpward.client._human import HumanAuth, SessionInfo
from mcpward.client._pkce import Pkce, code_challenge
from mcpward.client._registration import Registration
from mcpward.client._secret_source import (
    EnvSecret,
    FileSecret,
    KeyringSecret,
    SecretSource,
    StaticSecret,
)
from mcpward.client._sign_in import open_browser
from mcpward.client._token_endpoint import (
    AuthMethod,
    ClientAuth,
    SigningAlgorithm,
    TokenSet,
    TokenType,
)
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
    InvalidClientError,
    InvalidGrantError,
    MetadataError,
    RegistrationError,
    SignInRequired,
    SignInTimeout,
    StepUpLimitReached,
    TokenEndpointError,
)
from mcpward.client.errors import renamed as _renamed

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
    "EnterpriseAuth",
    "EnvSecret",
    "FileSecret",
    "FileStore",
    "HumanAuth",
    "InvalidClientError",
    "InvalidGrantError",
    "KeyringSecret",
    "KeyringStore",
    "MemoryStore",
    "MetadataError",
    "Pkce",
    "Registration",
    "RegistrationError",
    "ResourceMetadata",
    "SecretSource",
    "SecretStoreError",
    "ServerMetadata",
    "SessionInfo",
    "SharedTokenStore",
    "SignInRequired",
    "SignInTimeout",
    "SigningAlgorithm",
    "StaticSecret",
    "StepUpLimitReached",
    "StoredSession",
    "TokenEndpointError",
    "TokenSet",
    "TokenStore",
    "TokenType",
    "VaultSecret",
    "VaultStore",
    "code_challenge",
    "default_store",
    "discover",
    "open_browser",
    "request_headers",
]


def __getattr__(name: str) -> type[ClientError]:
    # Exception names of earlier releases (DiscoveryError, LoginRequired, …): still
    # importable, with a DeprecationWarning, and not part of __all__.
    return _renamed(__name__, name)
