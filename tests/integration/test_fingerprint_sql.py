"""The SQL twin of the error fingerprint (migrations/0006) agrees with the Python function on
the real server, message by message (see docs/performance.md, "Error groups")."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dlqctl.core.fingerprint import MAX_FINGERPRINT_LENGTH, fingerprint

# Pieces the rules look for, and the characters at their edges.
FRAGMENTS = [
    "2026-11-28",
    "2026-11-28T10:00:00Z",
    "2026-11-28 10:00:00.123+02:00",
    "1999-01-01 00:00 UTC",
    " +0200",
    "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
    "6F1C2A7E-0000-4000-8000-AAAAAAAAAAAA",
    "deadbeef01",
    "0xFF",
    "0x",
    "cafebabe",
    "12345678",
    "1500ms",
    "-42",
    "3.25",
    "1.2.3",
    "v2",
    "'x'",
    "can't",
    '"a \\"b\\" c"',
    "`col`",
    "\\",
    "\n",
    "\t",
    "\u00a0",
    "é",
    "’",
    "٣",
    "中文",
    "ß'",
    "'ü",
]
ALPHABET = "0123456789abcdefxABCDEFXTZU:-+., '\"`\\\n\t_é"

messages = st.one_of(
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(ALPHABET, max_size=4)), max_size=12).map(
        "".join
    ),
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40),
)


def _sql_fingerprints(conn: Any, batch: list[str]) -> list[str]:
    rows = conn.execute(
        "SELECT dlqctl_error_fingerprint(m) AS f FROM unnest(%s::text[]) WITH ORDINALITY AS t(m, i)"
        " ORDER BY i",
        (batch,),
    ).fetchall()
    return [r["f"] for r in rows]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=st.lists(messages, min_size=1, max_size=40))
@example(batch=["at 2026-11-28T10:00:00Z took 1500ms for 'x' id 0xFF", "über'x' é'y'", ""])
@example(batch=["x" * 3000, "1" * 1100 + "abc", "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b" * 40])
def test_sql_fingerprint_equals_python(conn: Any, batch: list[str]) -> None:
    assert _sql_fingerprints(conn, batch) == [fingerprint(m) for m in batch]


def test_sql_fingerprint_cuts_at_the_same_length(conn: Any) -> None:
    [cut] = _sql_fingerprints(conn, ["é" * 5000])
    assert cut == "é" * MAX_FINGERPRINT_LENGTH
