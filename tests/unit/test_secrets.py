from __future__ import annotations

import io

import pytest

from dlqctl.core.secrets import MASK, Scrubber, ScrubbingStream, build_scrubber, dsn_passwords


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("postgresql://u:s3cr3t@host/db", ["s3cr3t"]),
        ("postgres://u:p%40ss@host:5432/db?sslmode=require", ["p%40ss"]),
        ("postgresql://u@host/db?password=qwerty&sslmode=disable", ["qwerty"]),
        ("host=h user=u password=hunter22 dbname=d", ["hunter22"]),
        ("host=h password='with space' dbname=d", ["with space"]),
        ("host=h password = 'it\\'s' dbname=d", ["it's"]),
        ("postgresql://u:s3cr3t@[::1/db", ["s3cr3t"]),  # malformed: libpq will echo it
        ("postgresql://u@host/db", []),
        ("", []),
    ],
)
def test_dsn_passwords(dsn: str, expected: list[str]) -> None:
    assert dsn_passwords(dsn) == expected


def test_scrubber_masks_every_form_and_part() -> None:
    scrub = Scrubber(["p@ss word"])
    assert "p@ss" not in scrub("missing '=' after 'p@ss' in connection info")
    assert scrub("auth failed for p%40ss%20word") == f"auth failed for {MASK}"
    assert scrub("word") == MASK
    assert scrub("nothing secret here") == "nothing secret here"


def test_short_secrets_are_not_masked_everywhere() -> None:
    assert Scrubber(["ab"])("table dlq has rows") == "table dlq has rows"


def test_build_scrubber_from_settings() -> None:
    scrub = build_scrubber(
        "postgresql://u:s3cr3t@h/d",
        [{"sasl.password": "kafka-pw", "sasl.username": "alice"}, {"ssl.key.password": "keypw"}],
        {"PGPASSWORD": "envpw"},
    )
    text = scrub("s3cr3t kafka-pw keypw envpw alice postgresql://u:s3cr3t@h/d")
    assert "s3cr3t" not in text and "kafka-pw" not in text and "keypw" not in text
    assert "envpw" not in text
    assert "alice" in text


def test_scrubbing_stream_masks_secrets_split_across_writes() -> None:
    target = io.StringIO()
    stream = ScrubbingStream(target, Scrubber(["hunter22"]))
    stream.write("password hun")
    stream.write("ter22 rejected\nnext")
    assert target.getvalue() == f"password {MASK} rejected\n"
    stream.flush()
    assert target.getvalue().endswith("next")
