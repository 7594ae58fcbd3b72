"""Error fingerprints: messages that differ only in their variable parts form one group.

Timestamps, UUIDs, hex runs and quoted values are replaced before plain numbers, so that
one hex string or timestamp does not fall apart into pieces (see docs/performance.md,
"Error groups"). dlqctl's writer stores ``fingerprint(error_message)``; rows other writers
stored are grouped (and backfilled) by ``dlqctl_error_fingerprint(text)``, the same function
in SQL (migrations/0006), which must agree with this one exactly: change both or neither,
and old stored values no longer match new ones.
"""

from __future__ import annotations

import re

MAX_FINGERPRINT_LENGTH = 1024

# Character classes are spelled out, not \d \s \w (which match Unicode digits, spaces and
# letters in Python but depend on the locale in PostgreSQL): ASCII digits and whitespace;
# for the quote rule a word character is an ASCII letter, digit or underscore, or any
# non-ASCII character. The SQL twin (migrations/0006) uses the same classes.
_NOT_WORD_BEFORE = r"(?<![0-9A-Za-z_'])(?<![^\x00-\x7f])"
_NOT_WORD_AFTER = r"(?![0-9A-Za-z_])(?![^\x00-\x7f])"

# (pattern, placeholder, characters of which the pattern needs one to match): the rules
# apply in this order; the character test skips a pass cheaply (stats may run this once per
# distinct message of a million).
_REPLACEMENTS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    # 2026-11-28, 2026-11-28T10:00:00Z, 2026-11-28 10:00:00.123+02:00
    (
        re.compile(
            r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?"
            r"(?:[ \t\n\r\f\v]?(?:Z|UTC|[+-][0-9]{2}(?::?[0-9]{2})?))?)?"
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
        re.compile(
            r'"(?:[^"\\\n]|\\[^\n])*"'
            rf"|{_NOT_WORD_BEFORE}'(?:[^'\\\n]|\\[^\n])*'{_NOT_WORD_AFTER}"
            r"|`[^`\n]*`"
        ),
        "<str>",
        "\"'`",
    ),
    # Numbers, also glued to letters (1500ms, v2); a leading minus belongs to the number.
    (re.compile(r"-?[0-9]+(?:\.[0-9]+)?"), "<n>", ""),
)


def fingerprint(message: str) -> str:
    """The group key of an error message."""
    text = message
    for pattern, placeholder, needed in _REPLACEMENTS:
        if not needed or any(c in text for c in needed):
            text = pattern.sub(placeholder, text)
    return text[:MAX_FINGERPRINT_LENGTH]
