"""CLI fuzzing: generated argument lists for every command, run in-process against the
real database (and broker), must end the way docs/operations.md promises: no traceback, an exit
code in {0, 1, 2, 3}, and after a failure stderr ends with exactly one "Error: " line
(a usage error may print the usage hint above it).

Values: valid and invalid flags, odd unicode, lone surrogates, NUL, huge numbers, empty
strings, known ids and id-like junk. Runs are deterministic (derandomized) unless
``--hypothesis-seed=N`` is given, which then picks the examples.

What never runs for real (so that an example cannot block the suite):
- ``consume`` runs without bootstrap servers and with handlers from a fixed list of
  harmless specs (a handler is imported by name): it is parsed and refused, never started;
- ``demo`` gets ``--help`` or an unknown option: it is parsed, never started;
- ``replay``'s entries have no recorded topic and no topic map, and ``--topic`` gets only
  names Kafka rejects: nothing is ever published (the use case still runs up to there).
"""

from __future__ import annotations

import enum
import json
import os
import re
import typing
import uuid
from collections.abc import Callable
from typing import Any

import hypothesis.core
import pytest
import typer
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dlqctl.cli.app import app
from tests.cli_helpers import CliEnv, CliRun, run_cli
from tests.factories import entry, insert_entries

COMMANDS = typer.main.get_command(app).commands  # type: ignore[attr-defined]
# 13 commands today: about 800 argument lists in all, about a minute. To explore further:
# DLQCTL_TEST_FUZZ_EXAMPLES=1000 pytest tests/cli/test_fuzz.py --hypothesis-seed=N
EXAMPLES_PER_COMMAND = int(os.environ.get("DLQCTL_TEST_FUZZ_EXAMPLES", "60"))
# A fixed sequence in CI; `pytest --hypothesis-seed=N` explores another one.
DERANDOMIZE = hypothesis.core.global_force_seed is None

# Odd values any option or argument may get.
ODD = [
    "",
    " ",
    "-",
    "--",
    "0",
    "-1",
    "1e308",
    "-1e309",
    "nan",
    "inf",
    "99999999999999999999999999",
    "-9223372036854775809",
    "%",
    "_",
    "\\",
    "'",
    '"',
    "[x]",
    "[bold]x[/]",
    "a\nb",
    "\t",
    "\u202e",
    "😀",
    "ﬀ",
    "\x00",
    "\udcff",
    "\ud800",
]
TIMES = ["30s", "15m", "2h", "7d", "0d", "-5m", "99999999999d", "2026-11-01", "1970-01-01"]
TIMES += ["2026-11-01T10:00:00+02:00", "2026-13-45T25:61:00", "now", "1e9s", "5 m"]
# Values that make sense for an option of this name (the rest of the time: anything).
PLAUSIBLE: dict[str, list[str]] = {
    "consumer": ["orders", "billing", "nobody", "ORDERS"],
    "status": ["pending", "replayed", "discarded", "PENDING"],
    "since": TIMES,
    "until": TIMES,
    "older_than": TIMES,
    "error": ["ValueError", "bad order", "%", "_", "\\", "valueerror: BAD"],
    "reason": ["bad deploy 1.4.2", "x" * 5000],
    "output": ["table", "json", "ndjson", "csv", "openmetrics", "JSON"],
    "by": ["consumer", "status", "error", "hour", "day"],
    "shell": ["bash", "zsh", "fish"],
    "action": ["replay", "discard", "purge", "edit"],
    "topic": ["orders.v1", "t"],
}
NUMBERS = st.one_of(st.integers(-5, 200).map(str), st.integers().map(str), st.floats().map(str))
JUNK = st.one_of(
    st.sampled_from(ODD),
    st.text(max_size=24),
    st.text("0123456789abcdefABCDEF-", max_size=40),
    NUMBERS,
)
SURROGATES = st.text(st.characters(categories=["Cs"]), min_size=1, max_size=4)


def weighted(*pairs: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each ``weight`` times as likely."""
    pool = [strategy for weight, strategy in pairs for _ in range(weight)]
    return st.sampled_from(pool).flatmap(lambda strategy: strategy)


def id_values(ids: list[str]) -> st.SearchStrategy[str]:
    """Known ids, their prefixes (some too short, some ambiguous), and unknown ones."""
    known = st.sampled_from(ids)
    return st.one_of(
        known,
        known.map(lambda i: i[:8]),
        known.map(lambda i: i.replace("-", "")[:12].upper()),
        known.map(lambda i: i[:7]),
        st.uuids().map(str),
        st.just("00000000"),
    )


def _invalid_topic(text: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9._-]+", text) is None or text in (".", "..")


# Values that keep what may run for real within bounds (see the module docstring).
RESTRICTED: dict[tuple[str, str], st.SearchStrategy[str]] = {
    ("replay", "topic"): st.one_of(st.sampled_from(ODD), st.text(max_size=24)).filter(
        _invalid_topic
    ),
    ("consume", "handler"): st.sampled_from(["json:loads", "json", ":loads", "json:nope", "", "x"]),
}
DATABASE_URLS = [
    "",
    "not a dsn",
    "postgresql://u:p@[::1/db",
    "host=127.0.0.1 port=1 dbname=x",
    "postgresql://u:Zx9/kQ@127.0.0.1:1/db",
    "postgresql://u:pa%zz@127.0.0.1:1/db",
]


def value_for(command: str, param: Any, ids: list[str]) -> st.SearchStrategy[str]:
    restricted = RESTRICTED.get((command, param.name))
    if restricted is not None:
        return restricted
    kind = _value_type(param)
    plausible: list[st.SearchStrategy[str]] = []
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        plausible.append(st.sampled_from([str(member.value) for member in kind]))
    if kind in (int, float):
        plausible.append(NUMBERS)
    if param.name in PLAUSIBLE:
        plausible.append(st.sampled_from(PLAUSIBLE[param.name]))
    if "id" in param.name:  # --event-id, ids, entry ids, cursors
        plausible.append(id_values(ids))
    if not plausible:
        plausible.append(st.text(max_size=24))
    return weighted((12, st.one_of(*plausible)), (6, JUNK), (1, SURROGATES))


def _value_type(param: Any) -> Any:
    """The Python type of one value of the option (Typer keeps the annotation)."""
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    for inner in typing.get_args(annotation) or (annotation,):
        if inner is not type(None):
            return inner
    return None


def option_tokens(command: str, param: Any, ids: list[str]) -> st.SearchStrategy[list[str]]:
    names = st.sampled_from([*param.opts, *param.secondary_opts])
    if param.is_flag:
        return names.map(lambda name: [name])
    value = value_for(command, param, ids)
    spaced = st.tuples(names, value).map(list)
    long_names = [n for n in param.opts if n.startswith("--")]
    if not long_names:
        return spaced
    joined = st.tuples(st.sampled_from(long_names), value).map(lambda t: [f"{t[0]}={t[1]}"])
    return weighted((3, spaced), (1, joined))


def argument_lists(command: str, ids: list[str]) -> st.SearchStrategy[list[str]]:
    params = COMMANDS[command].params
    options = [option_tokens(command, p, ids) for p in params if p.param_type_name == "option"]
    arguments = [p for p in params if p.param_type_name == "argument"]
    positional = (
        value_for(command, arguments[0], ids) if arguments else weighted((3, JUNK), (1, SURROGATES))
    )
    token = weighted(
        (12, st.one_of(*options) if options else st.just([])),
        (4 if arguments else 1, positional.map(lambda v: [v])),
        (1, weighted((3, JUNK), (1, SURROGATES)).map(lambda v: [f"--{v}"])),  # no such option
        (1, st.sampled_from([["-h"], ["--help"], ["-"], ["--"]])),
    )
    # What the command requires is there most of the time, so that examples get past it.
    required = [
        option_tokens(command, p, ids)
        if p.param_type_name == "option"
        else positional.map(lambda v: [v])
        for p in params
        if p.required or p.name == "yes"  # a write command runs only with --yes here
    ]
    needed = st.tuples(*required).map(lambda ts: [t for tok in ts for t in tok])
    tokens = st.lists(token, max_size=7).map(lambda ts: [t for tok in ts for t in tok])
    body = st.tuples(weighted((4, needed), (1, st.just([]))), tokens).map(lambda t: t[0] + t[1])
    if command == "demo":
        body = st.one_of(st.just(["--help"]), body.map(lambda a: [*a, "--no-such-option"]))
    prefix = weighted(
        (16, st.just([])),
        (1, JUNK.map(lambda v: ["--profile", v])),
        (1, st.sampled_from(DATABASE_URLS).map(lambda v: ["--database-url", v])),
        (1, st.just(["--version"])),
    )
    return st.tuples(prefix, body).map(lambda t: [*t[0], command, *t[1]])


def check(args: list[str], result: CliRun) -> None:
    where = f"dlqctl {args!r} exited {result.exit_code}:\n{result.stderr}"
    assert "Traceback" not in result.stdout + result.stderr, where
    assert "bug in dlqctl" not in result.stderr, where  # an unexpected exception
    assert result.exit_code in (0, 1, 2, 3), where
    if result.exit_code:
        lines = [_error_text(line) for line in result.stderr.splitlines() if line.strip()]
        assert lines and lines[-1].startswith("Error: "), where
        assert sum(line.startswith("Error") for line in lines) == 1, where


def _error_text(line: str) -> str:
    """A line as text: with `consume --log-format json` every line, the closing error line
    too, is a JSON object (docs/consumer.md, "Logs")."""
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            return line
        if isinstance(record, dict) and record.get("level") == "error":
            return str(record.get("msg", ""))
    return line


def seed(conn: Any) -> list[str]:
    """A few entries of two consumers, every status, no recorded topic (see above)."""
    rows = [
        entry(consumer=consumer, status=status)
        for consumer in ("orders", "billing")
        for status in ("pending", "pending", "replayed", "discarded")
    ]
    return [str(i) for i in insert_entries(conn, rows)]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_generated_argument_lists_end_cleanly(
    command: str, conn: Any, cli_env: CliEnv, broker: Any, tmp_path: Any, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)  # whatever a command writes (a plan file) lands here
    ids = [*seed(conn), str(uuid.uuid4())]
    env = cli_env(broker.bootstrap_servers, DLQCTL_KAFKA_DELIVERY_TIMEOUT="2")
    if command == "consume":
        del env["DLQCTL_KAFKA_BOOTSTRAP_SERVERS"]  # parsed and refused, never started
    count = _counter(conn)

    @settings(
        max_examples=EXAMPLES_PER_COMMAND,
        derandomize=DERANDOMIZE,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(args=argument_lists(command, ids))
    def run(args: list[str]) -> None:
        if count() < 4:
            ids.extend(seed(conn))  # write commands may have purged or discarded them
        result = run_cli(args, env=env)
        event(f"exit {result.exit_code}")  # shown by --hypothesis-show-statistics
        check(args, result)

    run()


def _counter(conn: Any) -> Callable[[], int]:
    def count() -> int:
        row = conn.execute("SELECT count(*) AS n FROM dlq WHERE status = 'pending'").fetchone()
        return int(row["n"])

    return count
