"""Browser sessions in a signed cookie, and the CSRF tokens bound to them.

The cookie is ``base64url(json) "." base64url(HMAC-SHA256)`` under a key derived (HKDF)
from the operator's data key, so every replica shares it and nothing new must be stored.
It is HttpOnly, SameSite=Lax, and Secure with the ``__Host-`` prefix when the issuer is
https. Every sign-in starts a new session id (no fixation); the CSRF token is an HMAC of
the session id, so a token lifted from one session is worthless in another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.requests import Request
from starlette.responses import Response

MAX_COOKIE = 3800


def derive_key(data_key: str, purpose: str) -> bytes:
    raw = base64.urlsafe_b64decode(data_key + "=" * (-len(data_key) % 4))
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=f"mcpward {purpose}".encode()
    ).derive(raw)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Seals small JSON documents with an HMAC; ``purpose`` keeps cookies apart."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, purpose: str, body: str) -> str:
        message = f"{purpose}.{body}".encode()
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest())

    def seal(self, purpose: str, value: dict[str, Any]) -> str:
        body = _b64(json.dumps(value, separators=(",", ":"), sort_keys=True).encode())
        return f"{body}.{self._mac(purpose, body)}"

    def open(self, purpose: str, token: str | None) -> dict[str, Any] | None:
        if not token or len(token) > MAX_COOKIE or token.count(".") != 1:
            return None
        body, mac = token.split(".")
        if not hmac.compare_digest(mac, self._mac(purpose, body)):
            return None
        try:
            value = json.loads(_unb64(body))
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def csrf_token(self, sid: str) -> str:
        return self._mac("csrf", sid)

    def check_csrf(self, sid: str, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf_token(sid), presented or "")


@dataclass(frozen=True, slots=True)
class Session:
    """``uid`` is set once the person has fully signed in; ``pending_uid`` while the
    second factor is awaited."""

    sid: str
    issued_at: float
    expires_at: float
    uid: str | None = None
    auth_time: float | None = None
    amr: list[str] = field(default_factory=list)
    pending_uid: str | None = None
    pending_until: float | None = None

    @classmethod
    def anonymous(cls, now: float, lifetime: float) -> Session:
        return cls(sid=secrets.token_urlsafe(24), issued_at=now, expires_at=now + lifetime)

    def signed_in(self, uid: str, now: float, lifetime: float, amr: list[str]) -> Session:
        """A new session (new id) for ``uid``: the old id never becomes authenticated."""
        return Session(
            sid=secrets.token_urlsafe(24),
            issued_at=now,
            expires_at=now + lifetime,
            uid=uid,
            auth_time=now,
            amr=amr,
        )

    def awaiting_second_factor(self, uid: str, now: float, timeout: float) -> Session:
        return replace(
            self,
            sid=secrets.token_urlsafe(24),
            uid=None,
            auth_time=None,
            amr=["pwd"],
            pending_uid=uid,
            pending_until=now + timeout,
        )


class SessionCookies:
    def __init__(self, signer: Signer, *, secure: bool, clock_lifetime: float) -> None:
        self.signer = signer
        self.secure = secure
        self.lifetime = clock_lifetime
        prefix = "__Host-" if secure else ""
        self.name = prefix + "mcpward_session"
        self.flow_name = prefix + "mcpward_upstream"

    def load(self, request: Request, now: float) -> Session | None:
        value = self.signer.open("session", request.cookies.get(self.name))
        if value is None:
            return None
        try:
            session = Session(**value)
        except TypeError:
            return None
        if session.expires_at <= now:
            return None
        return session

    def save(self, response: Response, session: Session, now: float) -> None:
        self._set(response, self.name, self.signer.seal("session", asdict(session)), session, now)

    def _set(self, response: Response, name: str, value: str, session: Session, now: float) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max(1, int(session.expires_at - now)),
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def clear(self, response: Response) -> None:
        response.delete_cookie(
            self.name, path="/", secure=self.secure, httponly=True, samesite="lax"
        )

    # -- the short-lived state of a sign-in through an upstream provider ---------------

    def save_flow(self, response: Response, flow: dict[str, Any], lifetime: float) -> None:
        response.set_cookie(
            self.flow_name,
            self.signer.seal("upstream", flow),
            max_age=int(lifetime),
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def load_flow(self, request: Request) -> dict[str, Any] | None:
        return self.signer.open("upstream", request.cookies.get(self.flow_name))

    def clear_flow(self, response: Response) -> None:
        response.delete_cookie(
            self.flow_name, path="/", secure=self.secure, httponly=True, samesite="lax"
        )
