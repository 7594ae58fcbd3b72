"""The edit use case on real PostgreSQL: an edit racing a replay's claim waits for the row
lock and then lands or is refused; a change made while the editor was open refuses the
edit and keeps the operator's text."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dlqctl.core.edit import EditRefused, EditRequest, SavedText
from dlqctl.core.ids import parse_id
from dlqctl.usecases.edit import edit_entry
from tests.factories import audit_rows, entry, insert_entries, make_settings

ORIGINAL = {"order_id": 17, "currency": "XXX"}


def _entry(conn: Any) -> uuid.UUID:
    (dlq_id,) = insert_entries(
        conn, [entry(event_payload=ORIGINAL, event_raw=json.dumps(ORIGINAL).encode())]
    )
    return dlq_id


def _edited_raw(conn: Any, dlq_id: uuid.UUID) -> bytes | None:
    row = conn.execute("SELECT edited_raw FROM dlq WHERE dlq_id = %s", (dlq_id,)).fetchone()
    return None if row["edited_raw"] is None else bytes(row["edited_raw"])


def _waiting_for_a_lock(conn: Any, timeout: float = 30) -> None:
    """Until a `dlqctl edit` session waits for a row lock (or fail after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT count(*) AS n FROM pg_stat_activity"
            " WHERE application_name = 'dlqctl edit' AND wait_event_type = 'Lock'"
        ).fetchone()
        if row["n"]:
            return
        time.sleep(0.05)
    raise AssertionError("the edit never waited for the row lock")


def _edit_in_thread(settings: Any, request: EditRequest) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(edit_entry(settings, request))
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


@pytest.mark.parametrize("replay_delivers", [True, False], ids=["delivered", "not delivered"])
def test_an_edit_racing_a_replay_waits_for_its_claim(
    conn: Any, db_url: str, replay_delivers: bool
) -> None:
    dlq_id = _entry(conn)
    settings = make_settings(db_url)
    request = EditRequest(parse_id(str(dlq_id)), value=b'{"currency":"EUR"}', value_source="f")
    with psycopg.connect(db_url) as replay:  # a replay batch: claim, publish, mark, commit
        replay.execute("SELECT dlq_id FROM dlq WHERE dlq_id = %s FOR UPDATE SKIP LOCKED", (dlq_id,))
        thread, outcome = _edit_in_thread(settings, request)
        _waiting_for_a_lock(conn)
        assert outcome == []
        if replay_delivers:
            replay.execute(
                "UPDATE dlq SET status = 'replayed', retry_count = 1 WHERE dlq_id = %s", (dlq_id,)
            )
            replay.commit()
        else:
            replay.rollback()  # the broker did not acknowledge: the entry stays pending
        thread.join(30)
    assert not thread.is_alive()
    (result,) = outcome
    if replay_delivers:
        assert isinstance(result, EditRefused)
        assert f"entry {dlq_id} is replayed: only pending entries can be edited" in result.message
        assert _edited_raw(conn, dlq_id) is None
        assert audit_rows(conn) == []
    else:
        assert not isinstance(result, Exception), result
        assert result.changed
        assert _edited_raw(conn, dlq_id) == b'{"currency":"EUR"}'
        assert [r["action"] for r in audit_rows(conn)] == ["edit"]


class ScriptedEditor:
    """An editor session whose "operator" types ``text`` while ``meanwhile`` happens."""

    def __init__(self, tmp_path: Path, replace: tuple[str, str], meanwhile: Any) -> None:
        self.tmp_path = tmp_path
        self.replace = replace
        self.meanwhile = meanwhile
        self.opened: str | None = None

    def __call__(self, text: str, *, name: str, suffix: str) -> SavedText:
        self.opened = text
        path = self.tmp_path / f"dlqctl-edit-{name}{suffix}"
        saved = text.replace(*self.replace).encode()
        path.write_bytes(saved)
        self.meanwhile()
        return SavedText(data=saved, path=path, written=text.encode())


def test_a_change_while_the_editor_is_open_refuses_the_edit_and_keeps_the_text(
    conn: Any, db_url: str, tmp_path: Path
) -> None:
    dlq_id = _entry(conn)
    settings = make_settings(db_url)
    selector = parse_id(str(dlq_id))

    def someone_else_edits() -> None:
        edit_entry(settings, EditRequest(selector, set_headers=(("currency", "GBP"),)))

    editor = ScriptedEditor(tmp_path, ('"XXX"', '"EUR"'), someone_else_edits)
    with pytest.raises(EditRefused) as refused:
        edit_entry(settings, EditRequest(selector), editor=editor)
    assert editor.opened == '{\n  "order_id": 17,\n  "currency": "XXX"\n}\n'
    message = refused.value.message
    assert f"entry {dlq_id} changed while the editor was open (edited by" in message
    kept = tmp_path / f"dlqctl-edit-{str(dlq_id)[:13]}.json"
    assert f"your text is kept in {kept}" in message
    assert '"EUR"' in kept.read_text()
    assert _edited_raw(conn, dlq_id) is None  # only the other edit (headers) landed
    assert [r["details"]["source"] for r in audit_rows(conn)] == ["headers"]


def test_a_replay_while_the_editor_is_open_refuses_the_edit(
    conn: Any, db_url: str, tmp_path: Path
) -> None:
    dlq_id = _entry(conn)
    settings = make_settings(db_url)

    def replayed() -> None:
        conn.execute("UPDATE dlq SET status = 'replayed' WHERE dlq_id = %s", (dlq_id,))

    editor = ScriptedEditor(tmp_path, ('"XXX"', '"EUR"'), replayed)
    with pytest.raises(EditRefused, match="is replayed while the editor was open"):
        edit_entry(settings, EditRequest(parse_id(str(dlq_id))), editor=editor)
    assert _edited_raw(conn, dlq_id) is None
    assert audit_rows(conn) == []


def test_an_edit_back_to_the_original_is_no_edit(conn: Any, db_url: str) -> None:
    dlq_id = _entry(conn)
    settings = make_settings(db_url)
    selector = parse_id(str(dlq_id))
    original = json.dumps(ORIGINAL).encode()
    edit_entry(settings, EditRequest(selector, value=b'{"currency":"EUR"}', value_source="f"))
    back = edit_entry(settings, EditRequest(selector, value=original, value_source="f"))
    assert back.changed
    assert back.value_sha256_after == hashlib.sha256(original).hexdigest()
    row = conn.execute(
        "SELECT edited_raw, edited_headers, edited_at, edited_by FROM dlq WHERE dlq_id = %s",
        (dlq_id,),
    ).fetchone()
    assert row == {"edited_raw": None, "edited_headers": None, "edited_at": None, "edited_by": None}
    same = edit_entry(settings, EditRequest(selector, value=original, value_source="f"))
    assert not same.changed
    assert same.note == "the edit leaves the entry as it is: nothing changes"
    assert len(audit_rows(conn)) == 2
