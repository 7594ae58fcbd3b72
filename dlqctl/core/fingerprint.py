"""Error fingerprints: messages that differ only in their variable parts form one group.

Timestamps, UUIDs, hex runs and quoted values are replaced before plain numbers, so that
one hex string or timestamp does not fall apart into pieces (SPEC §4 "Error groups").
The stored ``error_fingerprint`` of dlqctl's writer and the grouping ``stats`` does for rows
other writers stored both come from ``fingerprint``: change it and old stored values no
longer match new ones.
"""

from __future__ import annotations

import re

MAX_FINGERPRINT_LENGTH = 1024

# (pattern, placeholder, characters of which the pattern needs one to match): the rules
# apply in this order; the character test skips a pass cheaply (stats may run this once per
# distinct message of a million).
_REPLACEMENTS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    # 2026-11-28, 2026-11-28T10:00:00Z, 2026-11-28 10:00:00.123+02:00
    (
        re.compile(
            r"\d{4}-\d{2}-\d{2}"
            r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:\s?(?:Z|UTC|[+-]\d{2}(?::?\d{2})?))?)?"
        ),
        "<ts>",
        "-",
    ),
    (
        re.compile(
            r"(?<![0-9A-Za-z])[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}"
            r"-[0-9a-fA-F]{12}(?![0-9A-Za-z])"
        ),
        "<uuid>",
        "-",
    ),
    # 8+ hex digits with at least one digit and one letter (so ordinary words stay words
    # and long decimal numbers stay numbers), or anything with a 0x prefix.
    (
        re.compile(
            r"(?<![0-9A-Za-z])(?:0[xX][0-9a-fA-F]+"
            r"|(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*[0-9])[0-9a-fA-F]{8,})(?![0-9A-Za-z])"
        ),
        "<hex>",
        "",
    ),
    # "double", 'single' (not an apostrophe inside a word) and `backtick` quoted values.
    (
        re.compile(r"\"(?:[^\"\\\n]|\\.)*\"|(?<![\w'])'(?:[^'\\\n]|\\.)*'(?![\w])|`[^`\n]*`"),
        "<str>",
        "\"'`",
    ),
    # Numbers, also glued to letters (1500ms, v2); a leading minus belongs to the number.
    (re.compile(r"-?\d+(?:\.\d+)?"), "<n>", ""),
)


def fingerprint(message: str) -> str:
    """The group key of an error message."""
    text = message
    for pattern, placeholder, needed in _REPLACEMENTS:
        if not needed or any(c in text for c in needed):
            text = pattern.sub(placeholder, text)
    return text[:MAX_FINGERPRINT_LENGTH]
