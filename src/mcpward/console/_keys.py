"""The signing keys page and rotation (after the publish lead, or at once for a
compromised key)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mcpward.console._actions import Action, Confirm, Params
from mcpward.console._core import Console, Operator
from mcpward.console._display import stamp
from mcpward.server.pages._render import redirect


class Keys:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.ops = console.ops

    async def index(self, request: Request, operator: Operator) -> Response:
        return self.console.page(
            "keys.html",
            {
                "keys": await self.ops.keys.list(),
                "done": request.query_params.get("done"),
                "lead": self.console.server.settings.lifetimes.signing_key_publish_lead,
                "stamp": stamp,
            },
            operator=operator,
            section="keys",
        )

    def actions(self) -> list[Action]:
        return [
            Action("/keys/rotate", (), ("key.rotated",), self._confirm_later, self._rotate_later),
            Action("/keys/rotate-now", (), ("key.rotated",), self._confirm_now, self._rotate_now),
        ]

    async def _confirm_later(self, operator: Operator, p: Params) -> Confirm:
        lead = self.console.server.settings.lifetimes.signing_key_publish_lead
        return Confirm(
            title="Rotate the signing key?",
            lede=(
                f"A new key is published now and signs from {lead / 60:g} minutes on, when "
                "every guard's key cache has seen it. The current key stays published until "
                "every token it signed has expired. Nothing stops working."
            ),
            button="Rotate key",
            back="/keys",
        )

    async def _rotate_later(self, request: Request, operator: Operator, p: Params) -> Response:
        await self.ops.keys.rotate(operator.actor)
        return redirect("/keys?done=rotated")

    async def _confirm_now(self, operator: Operator, p: Params) -> Confirm:
        return Confirm(
            title="Rotate the signing key now?",
            lede=(
                "For a compromised key: the new key signs at once. Guards that have not "
                "fetched the new key yet refuse new tokens until they refetch the key set "
                "(they do on the first unknown key id)."
            ),
            button="Rotate key now",
            back="/keys",
        )

    async def _rotate_now(self, request: Request, operator: Operator, p: Params) -> Response:
        await self.ops.keys.rotate(operator.actor, immediate=True)
        return redirect("/keys?done=rotated")
