"""``dlqctl edit``: change what replay publishes for one pending entry (see docs/edit.md).

One short transaction per edit: lock the row (``FOR UPDATE``, waiting), check that it is
still pending — and, after an editor session, that nobody changed it while the editor was
open — write the edit columns and the audit row, commit. The editor runs with no
transaction open and no lock held; a refused edit after it leaves the edited file in place
for a second try.
"""

from __future__ import annotations

import contextlib
import socket
from uuid import UUID

from dlqctl.core import jsontext
from dlqctl.core.edit import (
    EditChange,
    EditRefused,
    EditRequest,
    EditResult,
    EditTarget,
    SavedText,
    TextEditor,
    editor_text,
    not_json_message,
    plan_change,
    value_from_editor,
    value_from_file,
    without_dlq_headers,
)
from dlqctl.core.errors import DatabaseError, NotFoundError, UsageError
from dlqctl.core.models import AuditRecord, Header, iso_utc
from dlqctl.core.plans import headers_sha256, value_sha256
from dlqctl.core.settings import Settings
from dlqctl.db.audit import record_action
from dlqctl.db.connection import Connection, session
from dlqctl.db.edit_queries import read_target, write_edit
from dlqctl.db.entries import resolve_ids

APPLICATION_NAME = "dlqctl edit"


def edit_entry(
    settings: Settings, request: EditRequest, *, editor: TextEditor | None = None
) -> EditResult:
    """Apply ``request`` to its entry; with nothing but the id, the value opens in ``editor``
    (UsageError when there is none: not on a terminal)."""
    if request.needs_editor:
        if editor is None:
            raise UsageError(
                "nothing to edit: give the new value with --from-file F (- for stdin), change"
                " headers with --set-header K=V / --unset-header K, or drop the edit with"
                " --revert (the value opens in $VISUAL / $EDITOR only on a terminal)"
            )
        return _edit_in_editor(settings, request, editor)
    with session(settings.dsn, application_name=APPLICATION_NAME) as conn:
        (dlq_id,) = resolve_ids(conn, [request.selector])
        target = _locked(conn, dlq_id, request)
        target.refuse_unless_pending()
        if request.revert and not target.is_edited:
            conn.rollback()
            return _unchanged(target, f"entry {dlq_id} is not edited: nothing changes")
        new_value = None
        if request.value is not None:
            source = request.value_source or "the new value"
            new_value = value_from_file(target.kind, request.value, source, dlq_id)
        change = plan_change(target, request, new_value)
        source = "revert" if request.revert else _source(request)
        return _apply(conn, settings, target, change, request, source)


def _edit_in_editor(settings: Settings, request: EditRequest, editor: TextEditor) -> EditResult:
    """Read the entry, let the operator edit its value, then apply it if the entry is still
    as it was read."""
    with session(settings.dsn, application_name=APPLICATION_NAME) as conn:
        (dlq_id,) = resolve_ids(conn, [request.selector])
        before = _existing(read_target(conn, dlq_id, lock=False), request)
        conn.rollback()
    before.refuse_unless_pending()
    text, suffix = editor_text(before.kind, before.value, dlq_id)
    saved = editor(text, name=str(dlq_id)[:13], suffix=suffix)
    try:
        new_value = value_from_editor(before.kind, saved)
    except jsontext.JsonTextError as exc:
        raise EditRefused(_kept(not_json_message("the edited value", exc), saved, dlq_id)) from None
    if new_value is None or new_value == before.value:
        _remove(saved)
        what = "saved as it was" if saved.data.strip() else "emptied"
        return _unchanged(before, f"the value was {what}: nothing changes")
    try:
        with session(settings.dsn, application_name=APPLICATION_NAME) as conn:
            target = _locked(conn, dlq_id, request)
            target.refuse_unless_pending(while_editing=True)
            if _hashes(target) != _hashes(before):
                by = (
                    f"edited by {target.edited_by} at {iso_utc(target.edited_at)}"
                    if target.is_edited
                    else "its edit was dropped"
                )
                raise EditRefused(
                    f"entry {dlq_id} changed while the editor was open ({by}): nothing changed"
                )
            change = plan_change(target, request, new_value)
            result = _apply(conn, settings, target, change, request, "editor")
    except (EditRefused, NotFoundError, DatabaseError) as exc:
        raise type(exc)(_kept(exc.message, saved, dlq_id)) from None
    _remove(saved)
    return result


def _locked(conn: Connection, dlq_id: UUID, request: EditRequest) -> EditTarget:
    return _existing(read_target(conn, dlq_id, lock=True), request)


def _existing(target: EditTarget | None, request: EditRequest) -> EditTarget:
    if target is None:  # deleted (purged) between resolving the id and reading it
        raise NotFoundError(f"no entry with id {request.selector.text!r}")
    return target


def _hashes(target: EditTarget) -> tuple[str | None, str]:
    """What replay sends for the entry: sha256 of the value and of the headers."""
    return value_sha256(target.value), _headers_hash(target.headers)


def _headers_hash(headers: tuple[Header, ...]) -> str:
    return headers_sha256([(h.key, h.value) for h in headers])


def _apply(
    conn: Connection,
    settings: Settings,
    target: EditTarget,
    change: EditChange,
    request: EditRequest,
    source: str,
) -> EditResult:
    """Write the change and its audit row in the open transaction and commit (or roll back
    and report that nothing changes)."""
    current = EditChange(
        target.edited_raw,
        None if target.edited_headers is None else without_dlq_headers(target.edited_headers),
    )
    if change == current:
        conn.rollback()
        return _unchanged(target, "the edit leaves the entry as it is: nothing changes")
    value_before = target.value
    value_after = change.edited_raw if change.edited_raw is not None else target.original_value
    headers_before = target.headers
    headers_after = (
        change.edited_headers if change.edited_headers is not None else target.original_headers
    )
    result = EditResult(
        dlq_id=target.dlq_id,
        consumer=target.consumer,
        changed=True,
        reverted=request.revert,
        value_changed=value_before != value_after,
        headers_changed=headers_before != headers_after,
        value_sha256_before=value_sha256(value_before),
        value_sha256_after=value_sha256(value_after),
        headers_sha256_before=_headers_hash(headers_before),
        headers_sha256_after=_headers_hash(headers_after),
        edited_by=settings.actor if change.is_edited else None,
    )
    result.edited_at = write_edit(conn, target.dlq_id, change, settings.actor)
    record_action(conn, _audit(settings, result, request, source))
    conn.commit()
    return result


def _audit(
    settings: Settings, result: EditResult, request: EditRequest, source: str
) -> AuditRecord:
    return AuditRecord(
        actor=settings.actor,
        host=socket.gethostname(),
        action="edit",
        filter={"ids": [request.selector.text]},
        counts={"reverted" if result.reverted else "edited": 1},
        outcome="ok",
        ids=(result.dlq_id,),
        details=result.audit_details(source),
    )


def _source(request: EditRequest) -> str:
    if request.value is None:
        return "headers"
    return "stdin" if request.value_source == "stdin" else "file"


def _unchanged(target: EditTarget, note: str) -> EditResult:
    value_hash, headers_hash = _hashes(target)
    return EditResult(
        dlq_id=target.dlq_id,
        consumer=target.consumer,
        changed=False,
        value_sha256_before=value_hash,
        value_sha256_after=value_hash,
        headers_sha256_before=headers_hash,
        headers_sha256_after=headers_hash,
        edited_at=target.edited_at,
        edited_by=target.edited_by,
        note=note,
    )


def _kept(message: str, saved: SavedText, dlq_id: UUID) -> str:
    return (
        f"{message}; your text is kept in {saved.path}: fix it and run"
        f" `dlqctl edit {dlq_id} --from-file {saved.path}` (or edit again from the start)"
    )


def _remove(saved: SavedText) -> None:
    with contextlib.suppress(OSError):
        saved.path.unlink()
