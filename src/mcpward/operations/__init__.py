"""Operator actions: one service layer under the ``mcpward`` CLI and the operator console.

Each action takes the :class:`Actor` behind it and writes an audit event naming them;
revocations go through the authorization server's ``revoke_*`` methods, so they reach
every replica and guard the way every revocation does. Lists come a :class:`Page` at a
time, from indexed range scans, however many rows there are.

::

    ops = Operations(server)
    page = await ops.clients.page(limit=50)
    await ops.grants.revoke_family(family_id, Actor.cli())
"""

from __future__ import annotations

from mcpward.operations._base import (
    Actor,
    Conflict,
    NotFound,
    OperationError,
    Page,
    Refused,
)
from mcpward.operations.activity import CATEGORIES, Activity, Category, Ranked, Report
from mcpward.operations.clients import (
    ClientDetail,
    ClientOperations,
    ClientSummary,
    PruneResult,
    redirect_hosts,
)
from mcpward.operations.grants import GrantOperations
from mcpward.operations.keys import KeyOperations, KeyState, KeyView
from mcpward.operations.users import Enrolment, Offboarded, UserOperations, UserSummary
from mcpward.server import AuthorizationServer

__all__ = [
    "CATEGORIES",
    "Activity",
    "Actor",
    "Category",
    "ClientDetail",
    "ClientOperations",
    "ClientSummary",
    "Conflict",
    "Enrolment",
    "GrantOperations",
    "KeyOperations",
    "KeyState",
    "KeyView",
    "NotFound",
    "Offboarded",
    "OperationError",
    "Operations",
    "Page",
    "PruneResult",
    "Ranked",
    "Refused",
    "Report",
    "UserOperations",
    "UserSummary",
    "redirect_hosts",
]


class Operations:
    """Every operator action on one authorization server."""

    def __init__(self, server: AuthorizationServer) -> None:
        self.server = server
        self.clients = ClientOperations(server)
        self.grants = GrantOperations(server)
        self.users = UserOperations(server)
        self.keys = KeyOperations(server)
        self.activity = Activity(server)
