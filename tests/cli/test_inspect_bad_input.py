"""Bad input to list / show / stats: exit 2, one error line naming the option, no traceback.

The database URL points at a closed port: input must be rejected before connecting (a
connection attempt would exit 1 instead).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from dlqctl.core.cursor import Position, encode_cursor
from dlqctl.embedded.process import free_port

_CURSOR = encode_cursor(Position(datetime(2026, 11, 28, tzinfo=UTC), uuid.uuid4()))
_MISTYPED = _CURSOR[:5] + ("A" if _CURSOR[5] != "A" else "B") + _CURSOR[6:]

BAD_INPUTS: list[tuple[list[str], str]] = [
    (["list", "--limit", "0"], "'--limit'"),
    (["list", "--limit", "-5"], "'--limit'"),
    (["list", "--limit", "ten"], "'--limit'"),
    (["list", "--limit", "10001"], "'--limit'"),
    (["list", "-n"], "'-n'"),
    (["list", "--cursor", "nope"], "'--cursor'"),
    (["list", "--cursor", ""], "'--cursor'"),
    (["list", "--cursor", _CURSOR[:-3]], "'--cursor'"),
    (["list", "--cursor", _MISTYPED], "'--cursor'"),
    (["list", "--all", "--limit", "5"], "'--all'"),
    (["list", "--since", "yesterday"], "'--since'"),
    (["list", "--since", ""], "'--since'"),
    (["list", "--since", "0s"], "'--since'"),
    (["list", "--since", "1000000000d"], "'--since'"),
    (["list", "--until", "2026-13-01"], "'--until'"),
    (["list", "--until", "2026-01-01T25:00"], "'--until'"),
    (["list", "--until", "0001-01-01T00:00:00+01:00"], "'--until'"),
    (["list", "--since", "1h", "--until", "2h"], "'--until'"),
    (["list", "-s", "bogus"], "'--status'"),
    (["list", "--status", ""], "'--status'"),
    (["list", "-c", ""], "'--consumer'"),
    (["list", "--consumer", "   "], "'--consumer'"),
    (["list", "--error", ""], "'--error'"),
    (["list", "--event-id", "123"], "'--event-id'"),
    (["list", "-o", "xml"], "'--output'"),
    (["list", "--bogus"], "--bogus"),
    (["show"], "'ID'"),
    (["show", "abc"], "'ID'"),
    (["show", "zzzzzzzz"], "'ID'"),
    (["show", "0123456789abcdef0123456789abcdef01"], "'ID'"),
    (["show", "01234567", "-o", "yaml"], "'--output'"),
    (["stats", "--by", "week"], "'--by'"),
    (["stats", "--top", "0"], "'--top'"),
    (["stats", "-o", "yaml"], "'--output'"),
    (["stats", "--since", "5x"], "'--since'"),
    (["stats", "--event-id", "not-a-uuid"], "'--event-id'"),
    (["stats", "-s", "pending", "-s", "lost"], "'--status'"),
]


@pytest.mark.parametrize(("args", "option"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_exits_2_naming_the_option(cli: Any, args: list[str], option: str) -> None:
    closed = f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"
    result = cli(*args, env={"DLQCTL_DATABASE_URL": closed})
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.stderr
    assert option in errors[0]
    assert "Traceback" not in result.stderr
    assert "\x1b" not in result.stderr


def test_there_are_at_least_twenty_cases() -> None:
    assert len(BAD_INPUTS) >= 20
