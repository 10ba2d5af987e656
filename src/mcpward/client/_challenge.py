"""Reading `WWW-Authenticate: Bearer …` challenges (RFC 6750 §3, RFC 9728 §5.1), and their
DPoP twins (RFC 9449 §7.1), which carry the same parameters."""

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
    """The challenge to act on among the given header values: the Bearer or DPoP one that
    carries an ``error`` (a resource names the error on the scheme the request used), else
    the Bearer one, else the DPoP one. Other schemes are skipped."""
    found: dict[str, list[BearerChallenge]] = {"bearer": [], "dpop": []}
    for header in headers:
        pos = 0
        while pos < len(header):
            match = _SCHEME.match(header, pos)
            if match is None:
                break
            scheme, pos = match.group(1).lower(), match.end()
            params: dict[str, str] = {}
            while (param := _PARAM.match(header, pos)) is not None:
                value = param.group(2)
                if value.startswith('"'):
                    value = re.sub(r"\\(.)", r"\1", value[1:-1])
                params[param.group(1).lower()] = value
                pos = param.end()
            if scheme in found:
                found[scheme].append(BearerChallenge(params))
    candidates = found["bearer"] + found["dpop"]
    with_error = [c for c in candidates if c.error]
    if with_error:
        return with_error[0]
    return candidates[0] if candidates else None
