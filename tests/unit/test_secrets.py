from __future__ import annotations

import io
import threading

import pytest

from dlqctl.core.secrets import (
    MASK,
    Scrubber,
    ScrubbingStream,
    build_scrubber,
    dsn_passwords,
    is_secret_property,
    mask_dsn,
    misread_uri,
    without_credentials,
)


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("postgresql://u:s3cr3t@host/db", ["s3cr3t"]),
        ("postgres://u:p%40ss@host:5432/db?sslmode=require", ["p%40ss", "p@ss"]),
        ("postgresql://u@host/db?password=qwerty&sslmode=disable", ["qwerty"]),
        ("host=h user=u password=hunter22 dbname=d", ["hunter22"]),
        ("host=h password='with space' dbname=d", ["with space"]),
        ("host=h password = 'it\\'s' dbname=d", ["it\\'s", "it's"]),
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


def test_scrubbing_stream_can_be_written_from_a_signal_handler_mid_write() -> None:
    # SIGTERM's handler logs a line; it runs in the main thread, possibly while that thread
    # is inside write(). A non-reentrant lock deadlocked `consume` there for good.
    written: list[str] = []

    class Target(io.StringIO):
        def write(self, text: str) -> int:
            if not written:
                written.append(text)
                stream.write("signal handler line\n")  # as if a signal arrived right now
            else:
                written.append(text)
            return len(text)

    stream = ScrubbingStream(Target(), Scrubber(["hunter22"]))
    finished = threading.Event()

    def write() -> None:
        stream.write("first hunter22 line\n")
        finished.set()

    threading.Thread(target=write, daemon=True).start()
    assert finished.wait(10), "write() deadlocked on its own lock"
    assert written == [f"first {MASK} line\n", "signal handler line\n"]


@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        ("postgresql://app:s3cr?t-Pa55@h/x", "postgresql://app:***@h/x"),
        ("postgresql://app:s3cr#t-Pa55@h/x", "postgresql://app:***@h/x"),
        # libpq misreads an unencoded '/' or '@': everything up to the last '@' is masked.
        ("postgresql://app:Zx9/kQ+w8Lr2@h:5432/x", "postgresql://app:***@h:5432/x"),
        (
            "postgresql://app:p@ssw0rd@h/x?sslmode=require",
            "postgresql://app:***@h/x?sslmode=require",
        ),
        ("postgresql://app:co:lon@h/x", "postgresql://app:***@h/x"),
        (
            "postgresql://app@h/x?sslmode=disable&password=a%26bcd",
            "postgresql://app@h/x?sslmode=disable&password=***",
        ),
        # An '@' in a well-formed query is not user-info.
        (
            "postgresql://h:5432/x?application_name=me@home",
            "postgresql://h:5432/x?application_name=me@home",
        ),
        ("host=h password='it\\'s x' dbname=d", "host=h password=*** dbname=d"),
        ("host=h user=u password=with space dbname=d", "host=h user=u password=*** dbname=d"),
        ("host=h password='unterminated", "host=h password=***"),
        ("host=h sslpassword=keypass1 dbname=d", "host=h sslpassword=*** dbname=d"),
    ],
)
def test_mask_dsn(dsn: str, masked: str) -> None:
    assert mask_dsn(dsn) == masked
    for password in dsn_passwords(dsn):
        assert len(password) < 3 or password not in masked.replace("***", "")


def test_passwords_are_found_as_written_and_as_libpq_reads_them() -> None:
    assert dsn_passwords("postgresql://u:Kq7%41T9m@h/d") == ["Kq7%41T9m", "Kq7AT9m"]
    # libpq ends the user-info at the first '@'; the password meant runs to the last one.
    assert dsn_passwords("postgresql://u:p@ssw0rd@h/d") == ["p@ssw0rd", "p"]
    assert dsn_passwords("host=h password=foo bar dbname=d") == ["foo bar", "foo"]


def test_without_credentials_and_misread_uris() -> None:
    assert without_credentials("postgresql://app:Zx9/kQ@h:5432/db") == "postgresql://h:5432/db"
    assert without_credentials("postgresql://app@h/db?password=x1y2z") == (
        "postgresql://h/db?password=***"
    )
    assert misread_uri("postgresql://app:Zx9/kQ@h:5432/db")
    assert misread_uri("postgresql://app:p@ss@h/db")
    assert not misread_uri("postgresql://app:p%40ss@h/db")
    assert not misread_uri("postgresql://h:5432/db?application_name=me@home")
    assert not misread_uri("host=h password=a/b@c")


@pytest.mark.parametrize(
    "name",
    [
        "sasl.password",
        "ssl.key.password",
        "ssl.keystore.password",
        "ssl.key.pem",
        "ssl.certificate.pem",
        "sasl.oauthbearer.config",
        "sasl.oauthbearer.client.secret",
        "sasl.oauthbearer.assertion.private.key.pem",
        "sasl.oauthbearer.assertion.private.key.passphrase",
        "sasl.oauthbearer.token.endpoint.url",
        "sasl.jaas.config",
        "aws.credential",
    ],
)
def test_secret_properties(name: str) -> None:
    assert is_secret_property(name)
    assert is_secret_property(name.upper())


def test_plain_properties_are_not_secret() -> None:
    for name in ("bootstrap.servers", "sasl.username", "security.protocol", "ssl.ca.location"):
        assert not is_secret_property(name)


def test_pieces_and_escaped_forms_are_masked() -> None:
    scrub = Scrubber(['Zx9/kQ"w8Lr2'])
    # libpq quotes what it took for a port; JSON and Python escape the quote.
    assert scrub('invalid integer value "Zx9" for connection option "port"') == (
        f'invalid integer value "{MASK}" for connection option "port"'
    )
    assert scrub('{"msg": "Zx9/kQ\\"w8Lr2"}') == f'{{"msg": "{MASK}"}}'
    assert scrub("'Zx9/kQ\"w8Lr2'") == f"'{MASK}'"


def test_the_structure_of_a_secret_value_is_not_masked_alone() -> None:
    scrub = Scrubber(["https://idp.example/t0ken-Qw9z", "-----BEGIN PRIVATE KEY-----\nMIIEv9\n"])
    assert scrub("fetching https://other.example/x") == "fetching https://other.example/x"
    assert scrub("not a PRIVATE KEY") == "not a PRIVATE KEY"
    assert scrub("token at https://idp.example/t0ken-Qw9z") == f"token at {MASK}"
    assert scrub("pem MIIEv9 leaked") == f"pem {MASK} leaked"
