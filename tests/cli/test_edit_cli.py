"""`dlqctl edit` at the CLI edge on real PostgreSQL and tansu: --from-file, headers, the editor
on a real pseudo-terminal, --revert, refusals, the audit row, and what replay sends after."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dlqctl.cli.app import app
from tests.cli_helpers import CliEnv, run_on_terminal
from tests.factories import ACTOR, audit_rows, entry, insert_entries
from tests.kafka_helpers import create_topic, read_topic

ORIGINAL = b'{"order_id": 17, "amount": 12.50, "currency": "XXX"}'
FIXED = b'{"order_id": 17, "amount": 12.50, "currency": "EUR"}'


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def headers_sha(pairs: list[list[Any]]) -> str:
    return sha(json.dumps(pairs, sort_keys=True, separators=(",", ":")).encode())


def poisoned(conn: Any, topic: str | None = None, **overrides: Any) -> uuid.UUID:
    """One pending entry as the embedded consumer stores it: raw bytes, key, headers."""
    row = entry(
        consumer="orders",
        event_payload=json.loads(ORIGINAL),
        event_raw=ORIGINAL,
        event_key=b"order-17",
        event_headers=[["trace", b64(b"t-1")], ["dlq-id", b64(b"older")], ["tenant", b64(b"a")]],
        source_topic=topic,
        source_partition=0 if topic else None,
        source_offset=7 if topic else None,
        error_message="ValueError: unknown currency 'XXX'",
    )
    row.update(overrides)
    (dlq_id,) = insert_entries(conn, [row])
    return dlq_id


def columns(conn: Any, dlq_id: uuid.UUID) -> dict[str, Any]:
    row = conn.execute(
        "SELECT status, event_payload, event_raw, event_headers, edited_raw, edited_headers,"
        " edited_at, edited_by FROM dlq WHERE dlq_id = %s",
        (dlq_id,),
    ).fetchone()
    assert row is not None
    for key in ("event_raw", "edited_raw"):
        if row[key] is not None:
            row[key] = bytes(row[key])
    return dict(row)


def invoke_bytes(args: list[str], env: dict[str, str], data: bytes) -> Any:
    """The CLI in-process with ``data`` as stdin's exact bytes."""
    return CliRunner().invoke(app, args, env=env, input=data, catch_exceptions=False)


def test_edit_from_a_file_then_replay_sends_exactly_the_edit(
    conn: Any, cli_env: CliEnv, broker: Any, cli: Any, tmp_path: Path
) -> None:
    topic = create_topic(broker.bootstrap_servers)
    dlq_id = poisoned(conn, topic)
    before = columns(conn, dlq_id)
    fixed = tmp_path / "fixed.json"
    fixed.write_bytes(FIXED)

    args = ["edit", str(dlq_id)[:13], "--from-file", str(fixed), "--set-header", "currency=EUR"]
    result = cli(*args, "--unset-header", "tenant", "-o", "json", env=cli_env())

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    kept_headers = [["trace", b64(b"t-1")], ["tenant", b64(b"a")]]
    new_headers = [["trace", b64(b"t-1")], ["currency", b64(b"EUR")]]
    assert data == {
        "action": "edit",
        "dlq_id": str(dlq_id),
        "consumer": "orders",
        "changed": True,
        "reverted": False,
        "value_changed": True,
        "headers_changed": True,
        "value_sha256_before": sha(ORIGINAL),
        "value_sha256_after": sha(FIXED),
        "headers_sha256_before": headers_sha(kept_headers),
        "headers_sha256_after": headers_sha(new_headers),
        "edited_at": data["edited_at"],
        "edited_by": ACTOR,
        "note": None,
    }
    after = columns(conn, dlq_id)
    for original in ("status", "event_payload", "event_raw", "event_headers"):
        assert after[original] == before[original]
    assert after["edited_raw"] == FIXED
    assert after["edited_headers"] == new_headers
    assert after["edited_by"] == ACTOR and after["edited_at"] is not None
    (audit,) = audit_rows(conn)
    assert (audit["action"], audit["actor"], audit["outcome"]) == ("edit", ACTOR, "ok")
    assert audit["ids"] == [dlq_id]
    assert audit["counts"] == {"edited": 1}
    assert audit["details"] == {
        "source": "file",
        "reverted": False,
        "value_changed": True,
        "headers_changed": True,
        "value_sha256_before": sha(ORIGINAL),
        "value_sha256_after": sha(FIXED),
        "headers_sha256_before": headers_sha(kept_headers),
        "headers_sha256_after": headers_sha(new_headers),
    }

    replayed = cli("replay", str(dlq_id), "-o", "json", env=cli_env(broker.bootstrap_servers))
    assert replayed.exit_code == 0, replayed.output
    (message,) = read_topic(broker.bootstrap_servers, topic, 1)
    assert message.value == FIXED
    assert message.key == b"order-17"
    assert message.headers == [
        ("trace", b"t-1"),
        ("currency", b"EUR"),
        ("dlq-id", str(dlq_id).encode()),
        ("dlq-consumer", b"orders"),
        ("dlq-retry-count", b"1"),
    ]
    final = columns(conn, dlq_id)
    assert final["status"] == "replayed"
    assert (final["event_payload"], final["event_raw"]) == (before["event_payload"], ORIGINAL)


def test_stdin_takes_exact_bytes_and_revert_restores_the_original(
    conn: Any, cli_env: CliEnv, broker: Any, cli: Any
) -> None:
    topic = create_topic(broker.bootstrap_servers)
    dlq_id = poisoned(conn, topic)
    pretty = b'{\n  "order_id": 17,\n  "amount": 12.50,\n  "currency": "EUR"\n}\n'

    edited = invoke_bytes(["edit", str(dlq_id), "--from-file", "-"], cli_env(), pretty)
    assert edited.exit_code == 0, edited.output
    assert "edited" in edited.stdout and sha(pretty)[:12] in edited.stdout
    assert columns(conn, dlq_id)["edited_raw"] == pretty  # exact bytes, whitespace and all

    reverted = cli("edit", str(dlq_id), "--revert", "-o", "json", env=cli_env())
    assert reverted.exit_code == 0, reverted.output
    data = json.loads(reverted.stdout)
    assert (data["changed"], data["reverted"], data["edited_by"]) == (True, True, None)
    assert (data["value_sha256_before"], data["value_sha256_after"]) == (sha(pretty), sha(ORIGINAL))
    after = columns(conn, dlq_id)
    assert (after["edited_raw"], after["edited_headers"], after["edited_at"]) == (None, None, None)
    again = cli("edit", str(dlq_id), "--revert", env=cli_env())
    assert again.exit_code == 0, again.output
    assert "is not edited: nothing changes" in again.stderr
    assert [r["counts"] for r in audit_rows(conn)] == [{"edited": 1}, {"reverted": 1}]

    replayed = cli("replay", str(dlq_id), env=cli_env(broker.bootstrap_servers))
    assert replayed.exit_code == 0, replayed.output
    (message,) = read_topic(broker.bootstrap_servers, topic, 1)
    assert message.value == ORIGINAL
    assert [k for k, _ in message.headers] == [
        "trace",
        "tenant",
        "dlq-id",
        "dlq-consumer",
        "dlq-retry-count",
    ]


def test_invalid_json_is_refused_with_line_and_column(
    conn: Any, cli_env: CliEnv, cli: Any, tmp_path: Path
) -> None:
    dlq_id = poisoned(conn)
    broken = tmp_path / "broken.json"
    broken.write_bytes(b'{\n  "order_id": 17,\n  "currency": EUR\n}\n')

    result = cli("edit", str(dlq_id), "--from-file", str(broken), env=cli_env())

    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert f"{broken} is not valid JSON at line 3, column 15: Expecting value" in lines[0]
    assert columns(conn, dlq_id)["edited_raw"] is None
    assert audit_rows(conn) == []


def test_only_pending_entries_and_known_ids(conn: Any, cli_env: CliEnv, cli: Any) -> None:
    replayed = poisoned(conn, status="replayed", retry_count=1)
    discarded = poisoned(conn, status="discarded")
    for dlq_id, status in ((replayed, "replayed"), (discarded, "discarded")):
        result = cli("edit", str(dlq_id), "--set-header", "a=b", env=cli_env())
        assert result.exit_code == 2, result.output
        assert f"entry {dlq_id} is {status}: only pending entries can be edited" in result.stderr
        assert columns(conn, dlq_id)["edited_headers"] is None
        reverting = cli("edit", str(dlq_id), "--revert", env=cli_env())
        assert reverting.exit_code == 2, reverting.output

    unknown = cli("edit", str(uuid.uuid4()), "--revert", env=cli_env())
    assert unknown.exit_code == 3, unknown.output
    assert unknown.stderr.startswith("Error: no entry with id")

    refused = cli("edit", str(replayed), "--set-header", "dlq-retry-count=0", env=cli_env())
    assert refused.exit_code == 2, refused.output
    assert "dlq-* headers are replay's own" in refused.stderr
    assert audit_rows(conn) == []


def test_off_a_terminal_the_id_alone_is_refused(conn: Any, cli_env: CliEnv, cli: Any) -> None:
    dlq_id = poisoned(conn)
    result = cli("edit", str(dlq_id), env=cli_env(VISUAL="false", EDITOR="false"))
    assert result.exit_code == 2, result.output
    assert result.stderr.count("Error: ") == 1
    assert "--from-file" in result.stderr and "only on a terminal" in result.stderr


def test_values_that_are_not_json_are_edited_as_bytes_and_tombstones_only_in_headers(
    conn: Any, cli_env: CliEnv, cli: Any
) -> None:
    raw = poisoned(
        conn,
        event_raw=b"\xff\x00 not json",
        event_payload={"_dlqctl_raw_base64": b64(b"\xff\x00 not json")},
    )
    fixed = invoke_bytes(["edit", str(raw), "--from-file", "-"], cli_env(), b"\xfe still raw")
    assert fixed.exit_code == 0, fixed.output
    assert columns(conn, raw)["edited_raw"] == b"\xfe still raw"
    shown = json.loads(cli("show", str(raw), "-o", "json", env=cli_env()).stdout)
    assert shown["edited"]["value"] == {"_dlqctl_raw_base64": b64(b"\xfe still raw")}
    assert shown["event_payload"] == {"_dlqctl_raw_base64": b64(b"\xff\x00 not json")}

    tombstone = poisoned(conn, event_raw=None, event_payload={"_dlqctl_tombstone": True})
    refused = invoke_bytes(["edit", str(tombstone), "--from-file", "-"], cli_env(), b"{}")
    assert refused.exit_code == 2, refused.output
    assert "is a tombstone (its value was null): it has no value to edit" in refused.stderr
    headers = cli("edit", str(tombstone), "--set-header", "reason=gdpr", env=cli_env())
    assert headers.exit_code == 0, headers.output
    shown = json.loads(cli("show", str(tombstone), "-o", "json", env=cli_env()).stdout)
    assert shown["edited"]["value"] is None
    assert shown["edited"]["parts"] == ["headers"]


def _editor(tmp_path: Path, body: str) -> str:
    """A scripted editor (a small program that rewrites the file it is given), in a folder
    whose name has a space: the variable is split as a shell would split it."""
    folder = tmp_path / "my editor"
    folder.mkdir(exist_ok=True)
    script = folder / f"edit-{uuid.uuid4().hex[:6]}.py"
    script.write_text(
        f"#!{sys.executable}\nimport pathlib, sys\n"
        "assert sys.stdin.isatty(), 'the editor runs on the terminal'\n"
        "path = pathlib.Path(sys.argv[-1])\n"
        "assert path.stat().st_mode & 0o777 == 0o600, 'the file is private'\n"
        f"text = path.read_text()\n{body}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return f'"{script}" --wait'


def _temp_dir(tmp_path: Path) -> Path:
    """The TMPDIR of the edit runs: where dlqctl makes the file the editor opens."""
    folder = tmp_path / "tmp"
    folder.mkdir(exist_ok=True)
    return folder


def test_the_editor_on_a_terminal_edits_the_pretty_printed_value(
    conn: Any, cli_env: CliEnv, broker: Any, cli: Any, tmp_path: Path
) -> None:
    topic = create_topic(broker.bootstrap_servers)
    dlq_id = poisoned(conn, topic)
    seen = tmp_path / "seen.json"
    visual = _editor(
        tmp_path,
        f"pathlib.Path({str(seen)!r}).write_text(text)\n"
        "path.write_text(text.replace('\"XXX\"', '\"EUR\"'))",
    )

    temp = _temp_dir(tmp_path)
    env = cli_env(VISUAL=visual, EDITOR="false", TMPDIR=str(temp))
    run = run_on_terminal(["edit", str(dlq_id)[:8]], env)

    assert run.exit_code == 0, run.text
    assert seen.read_text() == (
        '{\n  "order_id": 17,\n  "amount": 12.50,\n  "currency": "XXX"\n}\n'
    )
    # Stored compact, every token as written (12.50 stays 12.50).
    assert columns(conn, dlq_id)["edited_raw"] == b'{"order_id":17,"amount":12.50,"currency":"EUR"}'
    assert list(temp.iterdir()) == []  # the editor's file is gone
    (audit,) = audit_rows(conn)
    assert audit["details"]["source"] == "editor"

    replayed = cli("replay", str(dlq_id), env=cli_env(broker.bootstrap_servers))
    assert replayed.exit_code == 0, replayed.output
    (message,) = read_topic(broker.bootstrap_servers, topic, 1)
    assert message.value == b'{"order_id":17,"amount":12.50,"currency":"EUR"}'
    assert message.key == b"order-17"


def test_the_editor_saved_unchanged_or_emptied_changes_nothing(
    conn: Any, cli_env: CliEnv, tmp_path: Path
) -> None:
    dlq_id = poisoned(conn)
    temp = _temp_dir(tmp_path)
    for body, said in (("pass", "saved as it was"), ("path.write_text('')", "emptied")):
        env = cli_env(EDITOR=_editor(tmp_path, body), TMPDIR=str(temp))
        run = run_on_terminal(["edit", str(dlq_id)], env)
        assert run.exit_code == 0, run.text
        assert f"the value was {said}: nothing changes" in run.text
        assert list(temp.iterdir()) == []
    assert columns(conn, dlq_id)["edited_raw"] is None
    assert audit_rows(conn) == []


def test_broken_json_from_the_editor_is_kept_for_a_second_try(
    conn: Any, cli_env: CliEnv, cli: Any, tmp_path: Path
) -> None:
    dlq_id = poisoned(conn)
    editor = _editor(tmp_path, "path.write_text(text.replace('\"XXX\"', 'EUR'))")

    run = run_on_terminal(["edit", str(dlq_id)], cli_env(EDITOR=editor))

    assert run.exit_code == 2, run.text
    line = " ".join(run.text.split())  # the terminal wraps the line
    assert "the edited value is not valid JSON at line 4, column 15: Expecting value" in line
    kept = Path(line.split("your text is kept in ")[1].split(":")[0])
    assert kept.read_text().count("EUR") == 1
    assert columns(conn, dlq_id)["edited_raw"] is None

    kept.write_text(kept.read_text().replace("EUR", '"EUR"'))
    second = cli("edit", str(dlq_id), "--from-file", str(kept), env=cli_env())
    assert second.exit_code == 0, second.output
    assert json.loads(columns(conn, dlq_id)["edited_raw"])["currency"] == "EUR"
    kept.unlink()


@pytest.mark.parametrize(
    ("editor", "code", "message"),
    [
        ("false", 1, "exited with status 1: nothing changed"),
        ("/no/such/editor -w", 2, "cannot start the editor '/no/such/editor' (from $EDITOR)"),
        ('"unbalanced', 2, "$EDITOR ('\"unbalanced') is not a command line"),
    ],
)
def test_an_editor_that_fails_changes_nothing(
    conn: Any, cli_env: CliEnv, editor: str, code: int, message: str, tmp_path: Path
) -> None:
    dlq_id = poisoned(conn)
    temp = _temp_dir(tmp_path)
    run = run_on_terminal(["edit", str(dlq_id)], cli_env(EDITOR=editor, TMPDIR=str(temp)))
    assert run.exit_code == code, run.text
    assert message in " ".join(run.text.split())
    assert columns(conn, dlq_id)["edited_raw"] is None
    assert list(temp.iterdir()) == []
