"""Drift test: every route of the console that changes state writes an audit event.

The route table is read from the application itself. Each POST route must be declared
in ``ConsoleApp.mutations`` with events from the audit catalogue, and must have an
exercise below that performs it the way an operator would; the exercise must produce
one of the declared events, naming the operator. A new state-changing route with no
declaration, no exercise, or no event fails here; so does an exercise left behind for a
route that is gone."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.routing import Route

from mcpward.audit import EVENTS
from mcpward.console import ConsoleApp
from tests.console.support import ConsoleSite, OperatorClient, Seeded, field, seed, start_console

Exercise = Callable[[ConsoleSite, OperatorClient, Seeded], Awaitable[None]]


async def _sign_in(site: ConsoleSite, c: OperatorClient, data: Seeded) -> None:
    async with OperatorClient(site) as other:
        assert (await other.sign_in()).status_code == 303


async def _sign_out(site: ConsoleSite, c: OperatorClient, data: Seeded) -> None:
    async with OperatorClient(site) as other:
        await other.sign_in()
        page = await other.get("/")
        assert (
            await other.post("/sign-out", {"csrf": field(page.text, "csrf")})
        ).status_code == 303


async def _step_up(site: ConsoleSite, c: OperatorClient, data: Seeded) -> None:
    assert (await c.step_up("/keys")).status_code == 303


def confirm(path: Callable[[Seeded], str]) -> Exercise:
    async def run(site: ConsoleSite, c: OperatorClient, data: Seeded) -> None:
        r = await c.confirm(path(data))
        assert r.status_code in (200, 303), r.text

    return run


EXERCISES: dict[str, Exercise] = {
    "/sign-in": _sign_in,
    "/sign-out": _sign_out,
    "/step-up": _step_up,
    "/clients/disable": confirm(lambda d: "/clients/disable?id=orders-cli"),
    "/clients/revoke": confirm(lambda d: "/clients/revoke?id=orders-cli"),
    "/clients/rotate-secret": confirm(lambda d: f"/clients/rotate-secret?id={d.agent}"),
    "/clients/prune": confirm(lambda d: "/clients/prune?days=30"),
    "/grants/revoke": confirm(lambda d: f"/grants/revoke?id={d.families[0]}&back=/"),
    "/users/revoke": confirm(lambda d: f"/users/revoke?id={d.bob.id}"),
    "/users/offboard": confirm(lambda d: f"/users/offboard?id={d.alice.id}"),
    "/consents/withdraw": confirm(
        lambda d: (
            f"/consents/withdraw?user={d.alice.id}&client=orders-cli"
            "&resource=http%3A%2F%2F127.0.0.1%3A9%2Fmcp"
        )
    ),
    "/keys/rotate": confirm(lambda d: "/keys/rotate"),
    "/keys/rotate-now": confirm(lambda d: "/keys/rotate-now"),
}
# Routes an operator uses before being one (the sign-in) carry no actor.
ANONYMOUS = {"/sign-in"}


def mutating_paths(app: ConsoleApp) -> set[str]:
    return {
        r.path
        for r in app.routes
        if isinstance(r, Route) and set(r.methods or ()) & {"POST", "PUT", "PATCH", "DELETE"}
    }


async def test_every_state_changing_route_writes_its_audit_event(tmp_path: Path) -> None:
    async with start_console(tmp_path) as site:
        data = await seed(site)
        app = ConsoleApp(site.server)
        await app.console.aclose()
        paths = mutating_paths(app)
        assert paths == set(app.mutations), "declare each state-changing route's events"
        assert paths == set(EXERCISES), "give each state-changing route an exercise here"
        for path, events in app.mutations.items():
            assert events and set(events) <= set(EVENTS), path
        async with OperatorClient(site) as c:
            assert (await c.sign_in()).status_code == 303
            for path in sorted(paths):
                before = len(site.audit.lines)
                await EXERCISES[path](site, c, data)
                written = site.audit.events()[before:]
                declared = [e for e in written if e["event"] in app.mutations[path]]
                assert declared, f"{path} wrote none of {app.mutations[path]}: {written}"
                if path not in ANONYMOUS:
                    assert all(e.get("actor") == "console:olivia" for e in declared), declared


def test_the_check_sees_a_new_route() -> None:
    """Guards the test above: a POST route added without a declaration is caught."""
    from mcpward.console._routes import ConsoleApp as App

    class Extended(App):
        def __init__(self) -> None:
            self.routes = [Route("/clients/delete", lambda r: None, methods=["POST"])]
            self.mutations = {}

    extended = Extended()
    assert mutating_paths(extended) - set(extended.mutations) == {"/clients/delete"}
