from __future__ import annotations

import pytest

from dlqctl.core.fingerprint import MAX_FINGERPRINT_LENGTH, fingerprint


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("timeout after 1500ms", "timeout after 30ms"),
        ("offset -5 out of range", "offset 12 out of range"),
        ("balance 10.25 below 0", "balance -3.5 below 7"),
        (
            "order 0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b not found",
            "order 6f1c2a7e-0000-4000-8000-aaaaaaaaaaaa not found",
        ),
        ("bad checksum deadbeef01 in block", "bad checksum 1234abcd5678ef in block"),
        ("pointer 0xDEADBEEF", "pointer 0x1f"),
        ("failed at 2026-11-28T10:00:00Z", "failed at 2025-01-02T23:59:59.123+02:00"),
        ("failed at 2026-11-28 10:00:00", "failed at 2026-01-01 00:00:00"),
        ('unknown field "customer_id"', 'unknown field "total"'),
        ("unknown status 'SHIPPED'", "unknown status 'lost in \\'transit\\''"),
        ("column `a` missing", "column `b` missing"),
        ("retry 3 of 5 on svc-2", "retry 1 of 5 on svc-7"),
    ],
)
def test_same_group(a: str, b: str) -> None:
    assert fingerprint(a) == fingerprint(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("timeout calling payments", "timeout calling inventory"),
        ("KeyError: 'sku'", "ValueError: 'sku'"),
        ("deadline exceeded", "connection refused"),
    ],
)
def test_different_groups(a: str, b: str) -> None:
    assert fingerprint(a) != fingerprint(b)


def test_pieces_are_not_split_by_the_number_rule() -> None:
    assert fingerprint("id 0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b") == "id <uuid>"
    assert fingerprint("at 2026-11-28T10:00:00Z") == "at <ts>"
    assert fingerprint("sha 9f86d081884c7d65") == "sha <hex>"
    assert fingerprint("took 1500ms") == "took <n>ms"
    assert fingerprint("delta -42") == "delta <n>"


def test_words_and_apostrophes_are_kept() -> None:
    assert fingerprint("can't decode 'x' in facade") == "can't decode <str> in facade"
    assert fingerprint("ValueError: invalid literal") == "ValueError: invalid literal"


def test_long_messages_are_cut() -> None:
    assert len(fingerprint("x" * 10_000)) == MAX_FINGERPRINT_LENGTH
