"""Destructive actions, declared once: what each confirms, what it does, and which audit
events it writes (the route table's drift test holds every state-changing route to its
declaration).

Each action is two routes on one path: GET shows what will happen (who and what is
affected) with one button; POST, from that page, does it. Both need a signed-in
operator whose password and TOTP were checked within ``console.step_up_window``; when
that is older, the operator is sent to the step-up page first and comes back to the
confirmation. The POST checks the CSRF token and the Origin as every console form.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from mcpward.audit import EventName
from mcpward.console._core import Console, Handler, Operator
from mcpward.operations import OperationError
from mcpward.server.pages._pages import BadForm, Form, one, read_form


@dataclass(frozen=True, slots=True)
class Confirm:
    """The confirmation page of an action."""

    title: str
    lede: str
    button: str
    back: str  # where Cancel goes
    facts: list[tuple[str, str]] = field(default_factory=list)
    items: list[str] = field(default_factory=list)  # e.g. the clients a prune deletes
    enabled: bool = True  # False: nothing to do (the button is not shown)
    # A number the operator may change before confirming: (parameter, label, value).
    adjust: tuple[str, str, str] | None = None


Params = dict[str, str]
ConfirmFn = Callable[[Operator, Params], Awaitable[Confirm]]
PerformFn = Callable[[Request, Operator, Params], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Action:
    path: str
    # The request parameters that name what is acted on (query on GET, form on POST).
    params: tuple[str, ...]
    # Audit events the action writes (at least the first); checked by the drift test.
    events: tuple[EventName, ...]
    confirm: ConfirmFn
    perform: PerformFn


def _params(action: Action, source: Form) -> Params:
    return {name: one(source, name)[:2048] for name in action.params}


def confirm_endpoint(console: Console, action: Action) -> Handler:
    async def endpoint(request: Request) -> Response:
        operator = await console.operator(request)
        if operator is None:
            return console.to_sign_in(request)
        params = _params(action, list(request.query_params.multi_items()))
        if not console.fresh(operator):
            return console.to_step_up(_here(action, params))
        try:
            confirm = await action.confirm(operator, params)
        except OperationError as exc:
            return console.error("Not possible", str(exc), 404, operator)
        return console.page(
            "confirm.html",
            {"confirm": confirm, "action": action.path, "params": params},
            operator=operator,
        )

    return endpoint


def perform_endpoint(console: Console, action: Action) -> Handler:
    async def endpoint(request: Request) -> Response:
        operator = await console.operator(request)
        try:
            form = await read_form(request)
        except BadForm:
            form = []
        if operator is None:
            return console.to_sign_in(request)
        if not console.form_ok(request, operator.session, form):
            return console.error("Request refused", "This form expired.", 403, operator)
        params = _params(action, form)
        if not console.fresh(operator):
            # Re-authentication ran out while the confirmation was open: step up, then
            # confirm again (nothing is done on a stale session).
            return console.to_step_up(_here(action, params))
        try:
            return await action.perform(request, operator, params)
        except OperationError as exc:
            return console.error("Not possible", str(exc), 409, operator)

    return endpoint


def _here(action: Action, params: Params) -> str:
    query = urlencode({k: v for k, v in params.items() if v})
    return action.path + (f"?{query}" if query else "")
