"""detect-secrets plugin for mcpward credentials.

    detect-secrets scan --plugin security/detect_secrets_mcpward.py

Reports a match only when its CRC-32 checksum is right, so look-alikes in documentation
and tests (like mcpw_cs_ followed by x's) are not flagged.
"""

import re
import zlib
from collections.abc import Generator

from detect_secrets.plugins.base import RegexBasedDetector

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _checksum_ok(credential: str) -> bool:
    rest = credential[len("mcpw_xx_") :]
    body, check = rest[:43], rest[43:]
    number = zlib.crc32(body.encode())
    expected = ""
    for _ in range(6):
        number, rem = divmod(number, 62)
        expected = _ALPHABET[rem] + expected
    return check == expected


class McpwardCredentialDetector(RegexBasedDetector):
    """Scans for mcpward client secrets, refresh tokens and authorization codes."""

    secret_type = "mcpward credential"

    denylist = (re.compile(r"\b(mcpw_(?:cs|rt|ac)_[0-9A-Za-z]{49})\b"),)

    def analyze_string(self, string: str) -> Generator[str, None, None]:
        for match in super().analyze_string(string):
            if _checksum_ok(match):
                yield match
