"""Entry ids given on the command line: full UUIDs or prefixes of at least 8 hex digits.

A prefix is resolved as a range on the primary-key index (``dlq_id BETWEEN lo AND hi``),
never as a text scan: uuidv7 ids share their first 12 digits within a millisecond.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from uuid import UUID

MIN_PREFIX_DIGITS = 8
_HEX = re.compile(r"^[0-9a-f]+$")


@dataclass(frozen=True)
class IdSelector:
    """A full id, or the closed range of ids that start with a prefix."""

    text: str
    low: UUID
    high: UUID

    @property
    def is_exact(self) -> bool:
        return self.low == self.high


def parse_id(text: str) -> IdSelector:
    """Parse a full id or a prefix (hyphens optional, any case); ValueError when malformed."""
    digits = text.strip().lower().replace("-", "")
    if not digits or not _HEX.match(digits):
        raise ValueError(f"{text!r} is not an entry id (hex digits, hyphens optional)")
    if len(digits) > 32:
        raise ValueError(f"{text!r} is longer than a UUID")
    if len(digits) < MIN_PREFIX_DIGITS:
        raise ValueError(
            f"{text!r} is too short: give at least {MIN_PREFIX_DIGITS} hex digits of the id"
        )
    low = UUID(digits.ljust(32, "0"))
    high = UUID(digits.ljust(32, "f"))
    return IdSelector(text=text, low=low, high=high)


def parse_uuid(text: str) -> UUID:
    """A complete UUID (any of the usual spellings); ValueError otherwise."""
    try:
        return UUID(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a UUID") from None
