"""The shell blocks of docs/runbooks.md, docs/operations.md and the README run for real.

Each ``## `` section of those pages is one test: a fresh migrated database seeded with the
entries the runbooks talk about (the placeholder id ``0193a1b2`` is a real entry), the
broker, every database role of operations.md created with exactly its documented SQL, and
then each ```` ```sh ```` block of the section run with bash (``-e -o pipefail``) in one
working directory, connected as the role the page names (``<!-- run-as: ROLE -->``, never
the owner). A block that exits non-zero fails the test.

Directives are HTML comments, invisible on GitHub:

- ``<!-- run-as: ROLE -->``: the role for the blocks that follow on that page;
- ``<!-- not-run: reason -->``: the next block is illustrative only (kubectl, systemctl);
- ``<!-- needs: consumer -->``: a section runs with an embedded consumer (consumer and group
  ``orders-projector``, as the service writer role) serving metrics where the page says
  ``127.0.0.1:9464``;
- ``<!-- needs: original-table -->``: a section starts from the original system's table only,
  owned by the role ``events_owner``, as before the first ``dlqctl migrate``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from tests.cli_helpers import process_env
from tests.consumer_helpers import RunningConsumer, make_consumer
from tests.factories import ACTOR, entry, insert_entries, make_settings
from tests.kafka_helpers import create_topic

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "docs" / "runbooks.md", ROOT / "docs" / "operations.md"]
ROLES_PAGE = ROOT / "docs" / "operations.md"
ROLES_SECTION = "Database roles"
OWNER_ROLE = "events_owner"  # the original system's table owner in the docs
METRICS_ADDRESS = "127.0.0.1:9464"

# The placeholder ids of the docs, as real entries.
POISON_ID = uuid.UUID("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
EVENT_ID = uuid.UUID("6f1c2a7e-0000-4000-8000-aaaaaaaaaaaa")
# The bad deploy of the discard runbook.
DEPLOYED_AT = datetime(2026, 11, 28, 14, 5, tzinfo=UTC)

MAX_NOT_RUN = 6
DIRECTIVE = re.compile(r"^<!--\s*([a-z-]+):\s*(.*?)\s*-->$")


@dataclass
class Block:
    page: str
    line: int
    lang: str
    code: str
    run_as: str | None
    not_run: str | None


@dataclass
class Section:
    page: str
    title: str
    needs: set[str] = field(default_factory=set)
    blocks: list[Block] = field(default_factory=list)

    @property
    def shell(self) -> list[Block]:
        return [b for b in self.blocks if b.lang == "sh"]

    @property
    def runnable(self) -> list[Block]:
        return [b for b in self.shell if b.not_run is None]


def read_sections(path: Path) -> list[Section]:
    """The ``## `` sections of a page with their fenced blocks and directives."""
    page = path.name
    sections = [Section(page, "(top)")]
    run_as: str | None = None
    not_run: str | None = None
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        directive = DIRECTIVE.match(line.strip())
        if line.startswith("## "):
            sections.append(Section(page, line[3:].strip()))
        elif directive:
            key, value = directive.groups()
            if key == "run-as":
                run_as = value
            elif key == "not-run":
                not_run = value
            elif key == "needs":
                sections[-1].needs |= {v.strip() for v in value.split(",")}
            else:
                raise AssertionError(f"{page}:{i + 1}: unknown directive {key!r}")
        elif line.lstrip().startswith("```") and line.strip() != "```":
            indent = len(line) - len(line.lstrip())
            lang = line.strip()[3:].strip()
            start = i + 1
            i += 1
            while lines[i].strip() != "```":
                i += 1
            code = "\n".join(raw[indent:] for raw in lines[start:i]) + "\n"
            sections[-1].blocks.append(Block(page, start, lang, code, run_as, not_run))
            not_run = None
        i += 1
    return sections


SECTIONS = [s for page in PAGES for s in read_sections(page)]
RUN_SECTIONS = [s for s in SECTIONS if s.runnable]


def documented_roles() -> dict[str, str]:
    """Role name → its SQL, from the roles section of operations.md."""
    (section,) = [s for s in read_sections(ROLES_PAGE) if s.title == ROLES_SECTION]
    roles: dict[str, str] = {}
    for block in section.blocks:
        if block.lang == "sql":
            for name in re.findall(r"CREATE ROLE (\w+)", block.code):
                roles[name] = block.code
    return roles


# -- what the docs must keep (no servers) ---------------------------------------------------


def test_every_shell_block_runs_or_says_why_not() -> None:
    roles = documented_roles()
    assert {"dlq_oncall", "dlq_operator", "dlq_cron", "dlq_writer", "dlq_migrator"} <= set(roles)
    shell = [b for s in SECTIONS for b in s.shell]
    skipped = [b for b in shell if b.not_run is not None]
    assert all(b.not_run for b in skipped), "a not-run directive without a reason"
    assert len(skipped) <= MAX_NOT_RUN, [(b.page, b.line, b.not_run) for b in skipped]
    assert len(shell) - len(skipped) >= 30, "the pages lost their shell blocks"
    for block in shell:
        assert block.not_run or block.run_as in roles, (
            f"{block.page}:{block.line}: runs as {block.run_as!r}"
        )
    # Other fences that hold shell commands would dodge the test.
    for section in SECTIONS:
        for block in section.blocks:
            assert block.lang not in ("", "bash", "shell", "console"), (
                f"{block.page}:{block.line}: a ```{block.lang} block; use ```sh (run) or "
                "another language"
            )


def test_cron_example_has_the_cron_role_grants() -> None:
    """docs/examples/cron/dlqctl repeats the cron role's grants for those who copy it."""
    cron = (ROOT / "docs" / "examples" / "cron" / "dlqctl").read_text()
    documented = re.findall(r"GRANT [^;]+;", documented_roles()["dlq_cron"])
    assert sorted(re.findall(r"GRANT [^;]+;", cron)) == sorted(documented)


# -- running a section ------------------------------------------------------------------------


def seed(conn: psycopg.Connection[Any], topic: str) -> None:
    """The entries the runbooks talk about."""
    now = datetime.now(UTC)

    def raw(value: dict[str, Any]) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    def consumed(consumer: str, offset: int, payload: dict[str, Any], **more: Any) -> Any:
        return entry(
            consumer=consumer,
            event_payload=payload,
            event_raw=raw(payload),
            source_topic=topic,
            source_partition=0,
            source_offset=offset,
            event_key=str(payload["order_id"]).encode(),
            event_headers=[["schema-version", base64.b64encode(b"1").decode()]],
            **more,
        )

    rows = []
    poison = {"order_id": 42, "currency": "XXX", "amount": "12.50"}
    rows.append(
        consumed(
            "orders-projector",
            0,
            poison,
            dlq_id=POISON_ID,
            event_id=EVENT_ID,
            error_message="ValueError: unknown currency 'XXX'",
            failed_at=now - timedelta(minutes=20),
        )
    )
    for n in range(1, 13):
        payload = {"order_id": 100 + n, "currency": "XBT", "amount": "3.00"}
        rows.append(
            consumed(
                "orders-projector",
                n,
                payload,
                error_message=f"ValueError: unknown currency 'XBT' in order {100 + n}",
                failed_at=now - timedelta(hours=3, minutes=n),
            )
        )
    for n in range(6):
        payload = {"order_id": 200 + n, "currency": "EUR", "amount": "9.99"}
        rows.append(
            consumed(
                "orders-projector",
                20 + n,
                payload,
                error_message=f"TimeoutError: call to payments-api timed out after {3000 + n}ms",
                failed_at=now - timedelta(minutes=30 + n),
            )
        )
    # A bad deploy at 14:05 UTC on 2026-11-28 poisoned a handful of events of "orders".
    for n in range(5):
        payload = {"order_id": 300 + n, "currency": "ZZZ", "amount": "1.00"}
        rows.append(
            consumed(
                "orders",
                40 + n,
                payload,
                error_message="ValueError: unknown currency 'ZZZ'",
                failed_at=DEPLOYED_AT + timedelta(minutes=5 + n),
            )
        )
    # Other consumers, no recorded topic (written by other services).
    for n in range(4):
        rows.append(
            entry(
                consumer="billing",
                error_message=f"psycopg.OperationalError: connection to ledger timed out ({n})",
                failed_at=now - timedelta(hours=1, minutes=n),
            )
        )
    # A replayed entry that failed again (see the attempts below).
    refailed = consumed(
        "orders-projector",
        60,
        {"order_id": 400, "currency": "EUR", "amount": "5.00"},
        error_message="KeyError: 'customer_id'",
        failed_at=now - timedelta(days=2),
        retry_count=1,
    )
    rows.append(refailed)
    # Old entries for purge: replayed and discarded, 40 days old; one old pending one.
    old = now - timedelta(days=40)
    for n, status in enumerate(["replayed"] * 6 + ["discarded"] * 4 + ["pending"]):
        rows.append(
            entry(
                consumer="orders",
                status=status,
                failed_at=old + timedelta(minutes=n),
                retry_count=1 if status == "replayed" else 0,
            )
        )
    insert_entries(conn, rows)
    attempts = [(refailed["dlq_id"], 1, now - timedelta(days=1), "KeyError: 'customer_id'", 61)]
    attempts.append((rows[-2]["dlq_id"], 1, old + timedelta(hours=1), "ValueError: again", 62))
    for dlq_id, attempt, failed_at, error, offset in attempts:
        conn.execute(
            "INSERT INTO dlq_attempts (dlq_id, attempt, failed_at, error_message, source_topic,"
            " source_partition, source_offset) VALUES (%s, %s, %s, %s, %s, 0, %s)",
            (dlq_id, attempt, failed_at, error, topic, offset),
        )
    conn.execute(
        "UPDATE dlq SET status_reason = 'failed again after replay 1', status_changed_at = now()"
        " WHERE dlq_id = %s",
        (refailed["dlq_id"],),
    )


def create_original_table(conn: psycopg.Connection[Any], owner: str) -> None:
    """The original system's table, created by its own role, with a row in it."""
    conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(owner)))
    conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(owner)))
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(owner)))
    conn.execute((ROOT / "migrations" / "0001_original_dlq.sql").read_text())
    conn.execute(
        "INSERT INTO dlq (consumer, event_id, event_payload, error_message)"
        " VALUES ('orders', gen_random_uuid(), '{\"order_id\": 1}', 'ValueError: old row')"
    )
    conn.execute("RESET ROLE")


@dataclass
class Stage:
    """One section's servers, roles and working directory."""

    db_url: str
    conn: psycopg.Connection[Any]
    bootstrap: str
    topic: str  # the topic the seeded entries were consumed from
    cwd: Path
    names: dict[str, str]  # documented role name → this test's role name
    substitutions: dict[str, str] = field(default_factory=dict)

    def url(self, role: str) -> str:
        info = conninfo_to_dict(self.db_url)
        return f"postgresql://{self.names[role]}@{info['host']}:{info['port']}/{info['dbname']}"

    def localise(self, text: str) -> str:
        for documented, local in {**self.names, **self.substitutions}.items():
            text = re.sub(rf"(?<![\w.]){re.escape(documented)}(?![\w])", local, text)
        return text

    def bash(self, code: str, role: str) -> subprocess.CompletedProcess[str]:
        """Run shell code with bash, connected as the documented ``role``."""
        bindir = str(Path(sys.executable).parent)
        assert shutil.which("dlqctl", path=bindir), f"no dlqctl next to {sys.executable}"
        assert shutil.which("jq") and shutil.which("curl"), "the docs use jq and curl"
        env = process_env(
            {
                "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
                "HOME": str(self.cwd),
                "DLQCTL_DATABASE_URL": self.url(role),
                "DLQCTL_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                "DLQCTL_KAFKA_DELIVERY_TIMEOUT": "10",
                "DLQCTL_ACTOR": ACTOR,
                "NO_COLOR": "1",
                "COLUMNS": "120",
            }
        )
        return subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", self.localise(code)],
            cwd=self.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )

    def run(self, block: Block) -> None:
        assert block.run_as is not None
        done = self.bash(block.code, block.run_as)
        assert done.returncode == 0, (
            f"{block.page}:{block.line} (as {block.run_as}) exited {done.returncode}\n"
            f"{block.code}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
        )


@pytest.fixture
def stage(
    request: pytest.FixtureRequest,
    db_url: str,
    conn: psycopg.Connection[Any],
    broker: Any,
    tmp_path: Path,
) -> Iterator[Stage]:
    section: Section = request.param
    suffix = uuid.uuid4().hex[:8]
    roles = documented_roles()
    names = {name: f"{name}_{suffix}" for name in [*roles, OWNER_ROLE]}
    if "original-table" in section.needs:
        url = request.getfixturevalue("empty_db_url")
        db = psycopg.connect(url, autocommit=True)
        create_original_table(db, names[OWNER_ROLE])
        to_create = {name: code for name, code in roles.items() if name == "dlq_migrator"}
    else:
        url, db = db_url, conn
        db.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(names[OWNER_ROLE])))
        to_create = roles
    topic = create_topic(broker.bootstrap_servers)
    current = Stage(url, db, broker.bootstrap_servers, topic, tmp_path, names)
    try:
        for code in dict.fromkeys(to_create.values()):
            db.execute(current.localise(code))
        if "original-table" not in section.needs:
            seed(db, topic)
        yield current
    finally:
        db.execute("RESET ROLE")
        for name in names.values():
            if db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
                db.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
                db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
        if db is not conn:
            db.close()


@pytest.mark.parametrize(
    "stage",
    RUN_SECTIONS,
    ids=[f"{s.page}:{s.title}" for s in RUN_SECTIONS],
    indirect=True,
)
def test_section_runs(stage: Stage, request: pytest.FixtureRequest) -> None:
    section: Section = request.node.callspec.params["stage"]
    with ExitStack() as stack:
        if "consumer" in section.needs:
            stack.enter_context(running_service(stage))
        for block in section.runnable:
            stage.run(block)


@contextmanager
def running_service(stage: Stage) -> Iterator[None]:
    """The service that consumes the seeded entries' topic (consumer and group
    ``orders-projector``, every event handled), as the service writer role, with its metrics
    endpoint where the docs say ``127.0.0.1:9464``."""
    # A short session: tansu holds a new group's first join for half of it.
    quick = {"session.timeout.ms": "3000"}
    settings = make_settings(stage.url("dlq_writer"), stage.bootstrap, kafka_consumer_config=quick)
    consumer = make_consumer(
        lambda _event: None, settings, stage.topic, group="orders-projector", metrics_port=0
    )
    with RunningConsumer(consumer) as running:
        running.wait_for(lambda: consumer.metrics_url is not None, what="the metrics endpoint")
        assert consumer.metrics_url is not None
        stage.substitutions[METRICS_ADDRESS] = consumer.metrics_url.removeprefix("http://")
        yield


LEAST = Section("operations.md", "what each role may not do")


@pytest.mark.parametrize("stage", [LEAST], ids=["roles"], indirect=True)
def test_roles_cannot_do_more_than_their_section_says(stage: Stage) -> None:
    """The read-only role writes nothing, the operator deletes nothing, the cron role
    replays and edits nothing: each gets PostgreSQL's permission error, and nothing changed."""
    refused = [
        ("dlq_oncall", "dlqctl discard 0193a1b2 --reason test"),
        ("dlq_oncall", "dlqctl replay 0193a1b2"),
        ("dlq_operator", "dlqctl purge --older-than 30d --yes"),
        ("dlq_cron", "dlqctl replay 0193a1b2"),
        ("dlq_cron", "dlqctl edit 0193a1b2 --set-header schema-version=2"),
    ]
    before = stage.conn.execute("SELECT count(*) AS n, max(status_changed_at) AS t FROM dlq")
    snapshot = before.fetchone()
    for role, command in refused:
        done = stage.bash(command, role)
        assert done.returncode == 1, f"{role}: {command}: {done.returncode}\n{done.stderr}"
        assert "permission denied" in done.stderr, f"{role}: {command}: {done.stderr}"
    after = stage.conn.execute("SELECT count(*) AS n, max(status_changed_at) AS t FROM dlq")
    assert after.fetchone() == snapshot
    done = stage.conn.execute("SELECT count(*) AS n FROM dlq_actions WHERE outcome = 'ok'")
    assert done.fetchone() == {"n": 0}
    # Nor with SQL of their own: the operator cannot touch what was stored of the event.
    with (
        psycopg.connect(stage.url("dlq_operator"), autocommit=True) as operator,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        operator.execute("UPDATE dlq SET event_payload = '{}' WHERE dlq_id = %s", (POISON_ID,))
