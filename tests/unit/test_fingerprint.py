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
        # Tricky ones.
        ("order 1234567 not found", "order 123456789012 not found"),  # digits only: a number
        (
            "id 0193A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B gone",
            "id 6f1c2a7e-0000-4000-8000-aaaaaaaaaaaa gone",
        ),
        (
            "token 0193a1b2c3d47e5f8a9b0c1d2e3f4a5b bad",
            "token ffff0000ffff0000ffff0000ffff0001 bad",
        ),
        ("at 2026-11-28T10:00:00.123456789+0200 x", "at 1999-01-01 00:00 x"),
        ("deadline 2026-11-28", "deadline 2025-02-03"),
        ("connect 10.0.0.1:5432 refused", "connect 192.168.100.20:6543 refused"),
        ("value -0.5 below -1", "value 3 below 12.75"),
        ("took 1.5s (limit 2s)", "took 30s (limit 10s)"),
        ('field "a \\"b\\" c" invalid', 'field "x" invalid'),
        ("can't parse 'x' for user 7", "can't parse 'yy' for user 8"),
        ('payload {"id": 5, "sku": "A-1"}', 'payload {"id": 70, "sku": "B-22"}'),
        ("HTTP/1.1 503 after 3 retries", "HTTP/1.1 502 after 10 retries"),
        ("key user_123 locked", "key user_98765 locked"),
        ("sha dead0001beef in 'k'", "sha 0c0ffee0 in 'other'"),
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
        ("cache facade failed", "cache decade failed"),  # hex-letter words stay words
        ("acceded deadbeef", "acceded cafebabe"),  # no digit: words, not hex
        ("timeout calling 'x' 3 times", 'timeout calling "x" 3 times in a row'),
        ("line 1\nTraceback: KeyError", "line 2\nTraceback: ValueError"),
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


def test_rule_order_keeps_pieces_whole() -> None:
    # A timestamp is not read as numbers and minus signs, nor a UUID as hex runs.
    assert fingerprint("at 2026-11-28T10:00:00Z done") == "at <ts> done"
    assert fingerprint("id 0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b.") == "id <uuid>."
    # A quoted value that holds a UUID is one quoted value.
    assert fingerprint("bad 'order 0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b'") == "bad <str>"
    # Long digit runs are numbers; mixed digits and hex letters are hex.
    assert fingerprint("n=12345678901") == "n=<n>"
    assert fingerprint("h=12345678ab") == "h=<hex>"
    assert fingerprint("v2 of svc-7") == "v<n> of svc<n>"


def test_messages_without_variable_parts_are_their_own_fingerprint() -> None:
    for message in ("KeyError", "connection refused", "", "über-fehler: ärger"):
        assert fingerprint(message) == message


def test_fingerprint_is_idempotent() -> None:
    for message in ("took 1500ms at 2026-11-28T10:00:00Z for 'x' id 0xFF", "a -1 b 2.5"):
        once = fingerprint(message)
        assert fingerprint(once) == once
