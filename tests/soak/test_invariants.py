"""The soak's invariant checks fail on the records they exist to catch (pure: no servers)."""

from __future__ import annotations

from dataclasses import replace

from tests.soak.invariants import (
    Attempt,
    BrokerKill,
    EntryRow,
    HandlerCall,
    PgOutage,
    ProcessLeft,
    Produced,
    Record,
    Sample,
    StatusChange,
    Witnessed,
    evaluate,
)

C, T = "soak-projector", "soak.orders"
OK_EVENT, FAILED, REPLAYED = "e-ok", "e-fail", "e-replayed"


def _entry(dlq_id: str, event_id: str, offset: int, **more: object) -> EntryRow:
    row = EntryRow(dlq_id, C, event_id, T, 0, offset, None, None, inserted_at=12.5)
    return replace(row, **more)  # type: ignore[arg-type]


def _record(**changes: object) -> Record:
    """A clean run: one handled event, one stored, one stored then replayed (and read back)."""
    record = Record(
        consumer=C,
        input_topic=T,
        final_epoch=0,
        produced=[
            Produced(OK_EVENT, 0, "ok", 0, 0, 100, 1.0),
            Produced(FAILED, 1, "fail", 0, 0, 101, 1.0),
            Produced(REPLAYED, 2, "until-A", 0, 0, 102, 1.0),
        ],
        calls=[
            HandlerCall(10.0, OK_EVENT, True),
            HandlerCall(11.0, FAILED, False),
            HandlerCall(11.1, FAILED, False),
            HandlerCall(12.0, REPLAYED, False),
            HandlerCall(12.1, REPLAYED, False),
            HandlerCall(40.0, REPLAYED, True),
        ],
        witnessed=[
            Witnessed(0, T, 0, 100, OK_EVENT, "ok", None, None, 9.0),
            Witnessed(0, T, 0, 101, FAILED, "fail", None, None, 9.0),
            Witnessed(0, T, 0, 102, REPLAYED, "until-A", None, None, 9.0),
            Witnessed(0, T, 0, 103, REPLAYED, "until-A", "d-2", 1, 31.0),
        ],
        kills=[],
        outages=[],
        entries=[_entry("d-1", FAILED, 101, status="pending"), _entry("d-2", REPLAYED, 102)],
        changes=[StatusChange("d-2", "pending", "replayed", 1, 30.0)],
        samples=[Sample(15.0, 0, {0: 103}), Sample(41.0, 0, {0: 104})],
        attempts=[],
        fixes={"until-A": 35.0},
        witness_ends={(0, 0): 104},
        processes_left=[],
        consumer_exit=0,
    )
    for name, value in changes.items():
        setattr(record, name, value)
    return record


def _failed(record: Record) -> dict[int, list[str]]:
    return {c.number: c.problems for c in evaluate(record) if not c.passed}


def test_a_clean_record_passes_every_check() -> None:
    checks = evaluate(_record())
    assert [c.number for c in checks] == [1, 2, 3, 4, 5]
    assert all(c.passed for c in checks), [c.lines() for c in checks]
    assert checks[0].counts["stored exactly once"] == 2
    assert checks[0].counts["handled (never failed for good)"] == 1


def test_an_event_stored_twice_is_a_duplicate() -> None:
    record = _record()
    record.entries.append(_entry("d-9", FAILED, 101))
    [problem] = _failed(record)[1]
    assert problem.startswith(f"DUPLICATE: event {FAILED} is stored 2x") and "d-9" in problem


def test_a_failure_without_an_entry_is_missing_unless_a_broker_kill_dropped_it() -> None:
    record = _record(entries=[_entry("d-2", REPLAYED, 102)])
    [problem] = _failed(record)[1]
    assert problem.startswith(f"MISSING: event {FAILED}")

    # Killed 2 s after the failure (before the consumer's next store): counted, not a pass.
    kill = BrokerKill(0, 12.5, 13.1, 15.0, 0.0)
    record = _record(entries=[_entry("d-2", REPLAYED, 102)], kills=[kill], final_epoch=1)
    assert 1 not in _failed(record)
    [check] = [c for c in evaluate(record) if c.number == 1]
    assert check.counts["lost by the broker restart before it was stored"] == 1

    # A kill long after the failure excuses nothing ...
    late = BrokerKill(0, 40.0, 41.0, 43.0, 0.0)  # 30 s after the failure
    record = _record(entries=[_entry("d-2", REPLAYED, 102)], kills=[late], final_epoch=1)
    assert _failed(record)[1][0].startswith("MISSING")
    # ... unless PostgreSQL was down meanwhile (the consumer waited for it).
    outage = PgOutage("kill", 11.5, 35.0)
    record = _record(
        entries=[_entry("d-2", REPLAYED, 102)], kills=[late], outages=[outage], final_epoch=1
    )
    assert 1 not in _failed(record)


def test_an_entry_for_an_event_that_never_failed_for_good_is_unexpected() -> None:
    record = _record()
    record.entries.append(_entry("d-7", OK_EVENT, 100))
    [problem] = _failed(record)[1]
    assert problem.startswith(f"UNEXPECTED: event {OK_EVENT}")


def test_an_event_never_received_fails_unless_a_broker_restart_wiped_it() -> None:
    record = _record()
    record.produced.append(Produced("e-lost", 3, "fail", 0, 1, 5, 2.0))
    [problem] = _failed(record)[1]
    assert problem.startswith("NOT RECEIVED: event e-lost")

    record.final_epoch = 1  # acknowledged by a cluster that was killed since
    record.kills = [BrokerKill(0, 2.5, 3.0, 5.0, 0.0)]
    assert 1 not in _failed(record)


def test_a_new_entry_for_a_replay_of_an_entry_that_still_exists_is_a_duplicate() -> None:
    record = _record()
    record.entries.append(_entry("d-8", REPLAYED, 103, replayed_from="d-2", inserted_at=32.0))
    [problem] = _failed(record)[1]
    assert problem.startswith("DUPLICATE: entry d-8") and "still there" in problem

    # Purged before the re-failure was stored: a new entry is right.
    record.entries[1] = replace(record.entries[1], deleted_at=31.5, status_when_deleted="replayed")
    assert 1 not in _failed(record)


def test_a_mark_without_its_message_fails_unless_a_broker_restart_wiped_the_message() -> None:
    record = _record(witnessed=[])
    [problem] = _failed(record)[2]
    assert problem.startswith("NO MESSAGE: entry d-2 marked replayed (retry_count 1)")

    # Marked after the witness caught up before a kill, before the restart: not verifiable.
    record.kills = [BrokerKill(0, 29.5, 30.2, 33.0, 0.0)]
    assert 2 not in _failed(record)
    # Marked before the witness caught up: it would have been read.
    record.kills = [BrokerKill(0, 30.5, 30.6, 33.0, 0.0)]
    assert 2 in _failed(record)


def test_a_purged_pending_entry_fails() -> None:
    record = _record()
    record.entries[0] = replace(record.entries[0], deleted_at=50.0, status_when_deleted="pending")
    [problem] = _failed(record)[3]
    assert problem.startswith("PENDING PURGED: entry d-1")


def test_a_failure_stored_only_after_a_commit_passed_it_fails() -> None:
    checks = {c.number: c for c in evaluate(_record())}
    assert checks[4].counts["failing messages below a committed offset"] == 2  # 101, 102
    assert checks[4].counts["stored before the commit was seen"] == 2

    record = _record()
    record.entries[0] = replace(record.entries[0], inserted_at=16.0)
    [problem] = _failed(record)[4]
    assert problem.startswith(f"UNSTORED BELOW A COMMIT: {T}[0]@101 (event {FAILED}, fail,")
    assert "sampled at 15.000; stored only at 16.000" in problem


def test_a_replayed_message_below_a_commit_needs_its_attempt() -> None:
    record = _record()
    record.witnessed.append(Witnessed(0, T, 0, 104, FAILED, "fail", "d-1", 1, 44.0))
    record.samples.append(Sample(50.0, 0, {0: 105}))
    record.witness_ends = {(0, 0): 105}
    [problem] = _failed(record)[4]
    assert "@104" in problem and "a replay of entry d-1" in problem and "stored never" in problem

    record.attempts = [Attempt("d-1", T, 0, 104, 45.0)]
    assert 4 not in _failed(record)


def test_a_commit_past_what_the_witness_read_or_no_sample_fails() -> None:
    [problem] = _failed(_record(witness_ends={(0, 0): 102}))[4]
    assert problem.startswith(f"the witness never read {T}[0] up to the committed offset 104")
    assert _failed(_record(samples=[]))[4] == ["no committed offsets were sampled"]


def test_a_process_left_behind_or_a_consumer_that_did_not_stop_cleanly_fails() -> None:
    left = ProcessLeft(4242, "postgres: checkpointer")
    [problem] = _failed(_record(processes_left=[left]))[5]
    assert problem == "LEFT BEHIND: pid 4242: postgres: checkpointer"
    [problem] = _failed(_record(consumer_exit=1))[5]
    assert "exited 1" in problem


def test_a_batch_of_one_marked_long_after_a_broker_kill_is_not_excused() -> None:
    # A run with batches of one marks right after the acknowledgement: a mark 5 s after
    # the kill is for a message that was never acknowledged.
    kill = BrokerKill(0, 26.5, 27.0, 35.0, 0.0)
    mark = StatusChange("d-2", "pending", "replayed", 1, 32.0, by="soak-replay-one-4")
    record = _record(witnessed=[], kills=[kill], changes=[mark])
    assert 2 not in _failed(record)  # not known to be a batch of one: excused
    record.single_batches = {"soak-replay-one-4"}
    assert _failed(record)[2][0].startswith("NO MESSAGE: entry d-2")
    # Marked within a moment of the kill: acknowledged just before it, then wiped.
    record.changes = [replace(mark, at=28.0)]
    assert 2 not in _failed(record)
