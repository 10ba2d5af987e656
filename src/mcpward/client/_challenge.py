"""Reading `WWW-Authenticate: Bearer …` challenges (RFC 6750 §3, RFC 9728 §5.1)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# auth-param = token BWS "=" BWS ( token / quoted-string )  (RFC 9110 §11.2)
_PARAM = re.compile(r'\s*([!#$%&\'*+\-.^_`|~\w]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]+)\s*,?')
_SCHEME = re.compile(r"\s*,?\s*([!#$%&'*+\-.^_`|~\w]+)(?:\s+|$)")


@dataclass(frozen=True)
class BearerChallenge:
    params: dict[str, str] = field(default_factory=dict)

    @property
    def error(self) -> str | None:
        return self.params.get("error")

    @property
    def scopes(self) -> list[str] | None:
        scope = self.params.get("scope")
        return scope.split() if scope is not None else None

    @property
    def resource_metadata(self) -> str | None:
        return self.params.get("resource_metadata")


def parse_bearer(headers: list[str]) -> BearerChallenge | None:
    """The Bearer challenge among the given header values, if any. Other schemes are skipped."""
    for header in headers:
        pos = 0
        while pos < len(header):
            match = _SCHEME.match(header, pos)
            if match is None:
                break
            scheme, pos = match.group(1), match.end()
            params: dict[str, str] = {}
            while (param := _PARAM.match(header, pos)) is not None:
                value = param.group(2)
                if value.startswith('"'):
                    value = re.sub(r"\\(.)", r"\1", value[1:-1])
                params[param.group(1).lower()] = value
                pos = param.end()
            if scheme.lower() == "bearer":
                return BearerChallenge(params)
    return None
