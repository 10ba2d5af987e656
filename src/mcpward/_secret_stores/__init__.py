"""AWS Secrets Manager and Vault KV v2, as the server's secret sinks and the client's
secret readers and token stores use them: one adapter per store, imported lazily because
boto3 and hvac are optional extras (``pip install mcpward[aws]`` / ``mcpward[vault]``).

Errors name the store, the operation and the secret's name, never a value.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from mcpward.errors import MCPWardError


class SecretStoreError(MCPWardError):
    """A secret store refused a request or could not be reached."""


class SecretNotFound(SecretStoreError):
    """The store has no secret (or no such version) under that name."""


class StoreConflict(SecretStoreError):
    """The secret changed since it was read: another writer won the check-and-set."""


def import_extra(module: str, extra: str) -> ModuleType:
    """Import an optional dependency, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise SecretStoreError(
            f"{module} is not installed: pip install 'mcpward[{extra}]'"
        ) from None
