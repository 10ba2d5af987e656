"""The operator console: clients, users and their grants, signing keys and recent
activity in a browser, with the actions operators need when a token leaks, a user
leaves or a client misbehaves.

Every action is an operation of :mod:`mcpward.operations` (the same code the CLI runs),
audited with the operator's identity, and revocations reach every replica and guard as
any revocation does. The console is off by default; ``mcpward serve`` serves it on a
listener of its own (``[console]`` settings), never at the issuer's origin. Operators
are users given the role by ``mcpward users grant-operator``; they sign in with a
password and TOTP, and destructive actions need a re-authentication within the last
five minutes. The pages carry no script, load nothing from elsewhere and are framed by
no one; every form is CSRF-protected; no token or secret is ever shown, except a
rotated client secret, once, on the response to its rotation.

``ConsoleApp(server).app`` is the ASGI application.
"""

from __future__ import annotations

from mcpward.console._routes import ConsoleApp

__all__ = ["ConsoleApp"]
