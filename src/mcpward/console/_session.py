"""Operator sessions: a signed cookie of the console's own, apart from the sign-in pages'.

Sealed by the pages' :class:`Signer` under a key of its own (HKDF purpose "console
session"), so a sign-in page cookie is worthless here and the other way round. The
cookie is ``__Host-`` prefixed, Secure, HttpOnly and SameSite=Strict: the console is
served only over https or on loopback, where browsers accept Secure cookies, and no
other site ever needs to send an operator into it. ``auth_time`` is the last time the
operator proved password and TOTP (sign-in or step-up); destructive actions need it
recent. A sign-in always starts a new session id (no fixation).
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, replace

from starlette.requests import Request
from starlette.responses import Response

from mcpward.server.pages._session import Signer

COOKIE = "__Host-mcpward_console"


@dataclass(frozen=True, slots=True)
class OperatorSession:
    sid: str
    issued_at: float
    expires_at: float
    uid: str | None = None
    username: str | None = None
    auth_time: float | None = None

    @classmethod
    def anonymous(cls, now: float, lifetime: float) -> OperatorSession:
        """Binds the sign-in form's CSRF token before anyone has signed in."""
        return cls(sid=secrets.token_urlsafe(24), issued_at=now, expires_at=now + lifetime)

    def signed_in(self, uid: str, username: str, now: float, lifetime: float) -> OperatorSession:
        return OperatorSession(
            sid=secrets.token_urlsafe(24),
            issued_at=now,
            expires_at=now + lifetime,
            uid=uid,
            username=username,
            auth_time=now,
        )

    def stepped_up(self, now: float) -> OperatorSession:
        return replace(self, auth_time=now)

    def fresh(self, now: float, window: float) -> bool:
        return self.auth_time is not None and 0 <= now - self.auth_time <= window


class OperatorCookies:
    def __init__(self, signer: Signer) -> None:
        self.signer = signer

    def load(self, request: Request, now: float) -> OperatorSession | None:
        value = self.signer.open("console", request.cookies.get(COOKIE))
        if value is None:
            return None
        try:
            session = OperatorSession(**value)
        except TypeError:
            return None
        return session if session.expires_at > now else None

    def save(self, response: Response, session: OperatorSession, now: float) -> None:
        response.set_cookie(
            COOKIE,
            self.signer.seal("console", asdict(session)),
            max_age=max(1, int(session.expires_at - now)),
            path="/",
            secure=True,
            httponly=True,
            samesite="strict",
        )

    def clear(self, response: Response) -> None:
        response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")
