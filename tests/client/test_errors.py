"""The client's exception tree: one root under mcpward's, names no other role uses, and the
names of earlier releases still importable (with a warning) so `except` clauses keep working."""

from __future__ import annotations

import importlib
import pkgutil
import warnings

import pytest

import mcpward.client
import mcpward.client.errors as client_errors
from mcpward.errors import MCPWardError


def _exceptions_of(package: str) -> set[type[BaseException]]:
    """Every exception class defined in `package` or its modules, however they are named."""
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, f"{package}."):
        importlib.import_module(info.name)
    found: set[type[BaseException]] = set()
    pending: list[type[BaseException]] = [BaseException]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            pending.append(sub)
            if sub.__module__.startswith(f"{package}."):
                found.add(sub)
    return found


def test_every_client_exception_is_a_client_error_under_the_package_root() -> None:
    assert issubclass(client_errors.ClientError, MCPWardError)
    client = _exceptions_of("mcpward.client")
    assert client_errors.InvalidGrantError in client
    assert all(issubclass(cls, client_errors.ClientError) for cls in client), client


def test_client_exception_names_differ_from_the_server_and_guard_names() -> None:
    client = {cls.__name__ for cls in _exceptions_of("mcpward.client")}
    others = {cls.__name__ for cls in _exceptions_of("mcpward.server")}
    others |= {cls.__name__ for cls in _exceptions_of("mcpward.guard")}
    assert "InvalidGrant" in others  # the server's name for what a client calls InvalidGrantError
    assert client & others == set()


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("DiscoveryError", client_errors.MetadataError),
        ("LoginRequired", client_errors.SignInRequired),
        ("LoginTimeout", client_errors.SignInTimeout),
        ("InvalidClient", client_errors.InvalidClientError),
        ("InvalidGrant", client_errors.InvalidGrantError),
    ],
)
def test_old_public_names_still_import_with_a_deprecation_warning(
    old: str, new: type[Exception]
) -> None:
    for module in (mcpward.client, client_errors):
        with pytest.warns(DeprecationWarning, match=f"{old} is now {new.__name__}"):
            assert getattr(module, old) is new
    assert old not in mcpward.client.__all__


def test_unknown_names_are_still_attribute_errors() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError, match="NoSuchThing"):
            _ = mcpward.client.NoSuchThing
