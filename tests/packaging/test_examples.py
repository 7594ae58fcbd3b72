"""The operations examples in docs/examples/ name only what exists.

Every ``dlqctl`` command line in them parses with the real command (options, types, choices,
ranges, required options); every ``DLQCTL_*`` variable they set is one dlqctl reads
(``dlqctl config`` names it as a source); the cron jobs run for real, as a role that has
only the grants the cron file lists; the alert rules use only metric and label names that a
real ``stats -o openmetrics`` and a real consumer's ``/metrics`` emit.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import typer.main
import yaml
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from dlqctl.cli.app import app
from dlqctl.db.connection import DEFAULT_CONNECT_TIMEOUT
from tests.cli_helpers import process_env
from tests.consumer_helpers import RunningConsumer, encode, event, make_consumer
from tests.factories import entry, insert_entries, make_settings
from tests.kafka_helpers import create_topic, produce

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
SERVICE = EXAMPLES / "systemd" / "dlqctl-consume-orders.service"
ENV_FILE = EXAMPLES / "systemd" / "orders.env"
DEPLOYMENT = EXAMPLES / "kubernetes" / "deployment.yaml"
CRON = EXAMPLES / "cron" / "dlqctl"
ALERTS = EXAMPLES / "prometheus" / "dlqctl-alerts.yaml"
# Pages whose `dlqctl …` mentions are checked too.
PAGES = [EXAMPLES / "README.md", ROOT / "docs" / "install.md"]

DLQCTL = typer.main.get_command(app)
# Labels Prometheus adds to every series it scrapes.
TARGET_LABELS = {"job", "instance"}


# -- dlqctl command lines -----------------------------------------------------------------


def command_index(argv: list[str]) -> int:
    """Where the command is in ``dlqctl ARGV``: after the global options and their values."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        option = next(p for p in DLQCTL.params if argv[i].split("=")[0] in p.opts)
        i += 1 if option.is_flag or "=" in argv[i] else 2
    return i


def parse_dlqctl(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """(command, its parameters) of ``dlqctl ARGV``, parsed as the CLI parses it; raises
    the CLI's usage error for an unknown option, a bad value or a missing option."""
    i = command_index(argv)
    assert i < len(argv), f"no command in dlqctl {shlex.join(argv)}"
    parent = DLQCTL.make_context("dlqctl", argv[:i]) if i else None
    name = argv[i]
    assert name in DLQCTL.commands, f"dlqctl has no command {name!r}"
    context = DLQCTL.commands[name].make_context(name, argv[i + 1 :], parent=parent)
    return name, context.params


def check_dlqctl(argv: list[str], where: str) -> tuple[str, dict[str, Any]]:
    try:
        return parse_dlqctl(argv)
    except Exception as exc:
        pytest.fail(f"{where}: dlqctl {shlex.join(argv)}: {type(exc).__name__}: {exc}")


def option_names(command_name: str) -> set[str]:
    params = [*DLQCTL.params, *DLQCTL.commands[command_name].params]
    return {o for p in params for o in (*p.opts, *p.secondary_opts)} | {"--help", "-h"}


def mentions(text: str) -> Iterator[str]:
    """`dlqctl …` in backticks; Prometheus templates ({{ … }}) stand for one word."""
    for found in re.findall(r"`(dlqctl(?: [^`]*)?)`", text):
        yield re.sub(r"\{\{[^}]*\}\}", "X", found)


def check_mention(mention: str, where: str) -> None:
    """A command named in prose may leave options out, but names only real ones."""
    words = shlex.split(mention)[1:]
    if command_index(words) == len(words):
        return
    command = words[command_index(words)]
    assert command in DLQCTL.commands, f"{where}: `{mention}`: no command {command!r}"
    unknown = {w.split("=")[0] for w in words if w.startswith("-")} - option_names(command)
    assert not unknown, f"{where}: `{mention}`: unknown options {sorted(unknown)}"


def shell_blocks(text: str) -> list[str]:
    """The lines of the ```sh blocks of a Markdown page, continuation lines joined."""
    blocks = re.findall(r"^```sh\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    return [line for block in blocks for line in re.sub(r"\\\n", " ", block).splitlines()]


def test_commands_named_in_the_examples_and_install_page_exist() -> None:
    files = [*PAGES, *(p for p in EXAMPLES.rglob("*") if p.is_file())]
    checked = 0
    for path in files:
        for mention in mentions(path.read_text()):
            check_mention(mention, str(path.relative_to(ROOT)))
            checked += 1
    assert checked >= 10, checked


def test_shell_blocks_of_the_pages_are_real_command_lines() -> None:
    for page in PAGES:
        for line in shell_blocks(page.read_text()):
            for argv in dlqctl_invocations(line.split(" #")[0]):
                check_dlqctl(argv, f"{page.relative_to(ROOT)}: {line}")
    lines = shell_blocks((ROOT / "docs" / "install.md").read_text())
    assert sum(len(dlqctl_invocations(line)) for line in lines) >= 5


# -- settings ------------------------------------------------------------------------------


def settings_sources(cli: Any, env: dict[str, str]) -> dict[str, Any]:
    result = cli("config", "-o", "json", env=env)
    assert result.exit_code == 0, result.output
    shown: dict[str, Any] = json.loads(result.stdout)
    return shown


def assert_read_by_dlqctl(cli: Any, env: dict[str, str], where: str) -> None:
    """Each DLQCTL_* variable is valid and is the source of a setting, the config file or
    the profile (a misspelt name would be ignored, so it would show up nowhere)."""
    variables = {k: v for k, v in env.items() if k.startswith("DLQCTL_")}
    assert variables, where
    shown = settings_sources(cli, variables)
    sources = {s["source"] for s in shown["settings"].values()}
    for name, value in variables.items():
        if name == "DLQCTL_CONFIG":
            assert shown["config_file"] == value, where
        elif name == "DLQCTL_PROFILE":
            assert shown["profile"] == value, where
        else:
            assert name in sources, f"{where}: dlqctl does not read {name}"


# -- systemd -------------------------------------------------------------------------------


def read_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit file: section → (key, value) in order; continuation lines joined."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
        else:
            key, _, value = line.partition("=")
            current.append((key.strip(), value.strip()))
    return sections


def unit_values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit[section] if k == key]


def read_env_file(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and line[0] != "#"]
    return dict(line.split("=", 1) for line in lines)


def longest_handler_call(path: Path) -> int:
    (seconds,) = re.findall(r"longest handler call: (\d+)s", path.read_text())
    return int(seconds)


def test_systemd_unit_runs_a_real_consume_command_line(cli: Any) -> None:
    unit = read_unit(SERVICE)
    (exec_start,) = unit_values(unit, "Service", "ExecStart")
    program, *argv = shlex.split(exec_start)
    assert Path(program).name == "dlqctl"
    command, params = check_dlqctl(argv, SERVICE.name)
    assert command == "consume"
    assert params["metrics_port"] and params["log_format"] == "json"

    env: dict[str, str] = {}
    for assignments in unit_values(unit, "Service", "Environment"):
        env.update(word.split("=", 1) for word in shlex.split(assignments))
    (env_file,) = unit_values(unit, "Service", "EnvironmentFile")
    assert Path(env_file).name == ENV_FILE.name
    env.update(read_env_file(ENV_FILE))
    assert "DLQCTL_DATABASE_URL" in read_env_file(ENV_FILE)  # the secret stays out of the unit
    assert_read_by_dlqctl(cli, env, SERVICE.name)

    # A stop gets one handler call, one DLQ write and the commit; exit 2 is not retried.
    (timeout,) = unit_values(unit, "Service", "TimeoutStopSec")
    assert int(timeout) >= longest_handler_call(SERVICE) + DEFAULT_CONNECT_TIMEOUT
    assert unit_values(unit, "Service", "KillSignal") == ["SIGTERM"]
    assert unit_values(unit, "Service", "Restart") == ["on-failure"]
    assert unit_values(unit, "Service", "RestartPreventExitStatus") == ["2"]


# -- Kubernetes ----------------------------------------------------------------------------


def test_kubernetes_deployment_probes_and_scrapes_the_consumer_it_runs(cli: Any) -> None:
    deployment = yaml.safe_load(DEPLOYMENT.read_text())
    assert deployment["kind"] == "Deployment"
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["dlqctl"]
    command, params = check_dlqctl([str(a) for a in container["args"]], DEPLOYMENT.name)
    assert command == "consume"

    # The metrics port is the one declared, probed and annotated; it listens beyond loopback.
    port = params["metrics_port"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == port
    assert params["metrics_host"] not in ("127.0.0.1", "localhost", "::1")
    probe = container["readinessProbe"]["httpGet"]
    assert probe["path"] == "/ready"
    assert probe["port"] in ("metrics", port)
    assert "livenessProbe" not in container
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == port
    assert annotations["prometheus.io/path"] == "/metrics"

    env = {
        e["name"]: e.get("value", "postgresql://from-a-secret@db/orders") for e in container["env"]
    }
    assert "value" not in next(e for e in container["env"] if e["name"] == "DLQCTL_DATABASE_URL")
    assert_read_by_dlqctl(cli, env, DEPLOYMENT.name)

    # Same stop budget as the systemd unit.
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    assert grace >= longest_handler_call(DEPLOYMENT) + DEFAULT_CONNECT_TIMEOUT
    (timeout,) = unit_values(read_unit(SERVICE), "Service", "TimeoutStopSec")
    assert grace == int(timeout)
    assert longest_handler_call(DEPLOYMENT) == longest_handler_call(SERVICE)


# -- cron ----------------------------------------------------------------------------------

CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\d+(-\d+)?))*$")


@dataclass
class Crontab:
    variables: dict[str, str] = field(default_factory=dict)
    jobs: list[tuple[str, str, str]] = field(default_factory=list)  # (schedule, user, command)
    grants: list[str] = field(default_factory=list)


def read_crontab(path: Path) -> Crontab:
    """An /etc/cron.d file: variables, jobs (with a user field), and the GRANTs its comments
    list for the database role."""
    tab = Crontab()
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            tab.grants += re.findall(r"(GRANT [^;]+;)", line)
        elif re.match(r"^[A-Z_]+=", line):
            name, value = line.split("=", 1)
            tab.variables[name] = value
        elif line.strip():
            fields = line.split(None, 6)
            schedule, user, command = " ".join(fields[:5]), fields[5], fields[6]
            assert all(CRON_FIELD.match(f) for f in fields[:5]), line
            tab.jobs.append((schedule, user, command))
    return tab


def dlqctl_invocations(command: str) -> list[list[str]]:
    """The argument lists of each dlqctl program run by a shell command line."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    found: list[list[str]] = []
    current: list[str] | None = None
    command_position = True
    for word in lexer:
        if re.fullmatch(r"[<>]+", word):  # a redirection: a file name follows
            current, command_position = None, False
        elif re.fullmatch(r"[;&|()]+", word):
            current, command_position = None, True
        elif current is not None:
            current.append(word)
        elif command_position and not re.match(r"^[A-Za-z_]\w*=", word):
            command_position = False
            if Path(word).name == "dlqctl":
                current = []
                found.append(current)
    return found


def test_cron_jobs_run_as_a_role_with_only_the_listed_grants(
    cli: Any, db_url: str, conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    tab = read_crontab(CRON)
    commands = [
        check_dlqctl(argv, CRON.name)[0] for _, _, c in tab.jobs for argv in dlqctl_invocations(c)
    ]
    assert commands == ["purge", "stats"]

    # The role, named uniquely (roles are cluster-wide), with exactly the grants listed.
    (listed_role,) = {re.search(r" TO (\w+);", g).group(1) for g in tab.grants}
    role = f"{listed_role}_{uuid.uuid4().hex[:8]}"
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        for grant in tab.grants:
            conn.execute(grant.replace(f" TO {listed_role};", f" TO {role};"))
        _run_cron_jobs(tab, db_url, role, conn, tmp_path)
    finally:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def _run_cron_jobs(
    tab: Crontab, db_url: str, role: str, conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=40), now - timedelta(days=1)
    rows = [
        entry(consumer="billing", status="replayed", failed_at=old),
        entry(consumer="billing", status="discarded", failed_at=old),
        entry(consumer="billing", status="pending", failed_at=old),
        entry(consumer="billing", status="replayed", failed_at=recent),
    ]
    insert_entries(conn, rows)
    info = conninfo_to_dict(db_url)
    config = tmp_path / "cron.toml"
    config.write_text(
        f'database_url = "postgresql://{role}@{info["host"]}:{info["port"]}/{info["dbname"]}"\n'
    )
    textfile = tmp_path / "textfile"
    textfile.mkdir()
    env = process_env({**tab.variables, "DLQCTL_CONFIG": str(config)})
    dlqctl = f"{shlex.quote(sys.executable)} -m dlqctl"
    for _, _, command in tab.jobs:
        runnable = re.sub(r"\S*/bin/dlqctl\b", dlqctl, command)
        runnable = runnable.replace("/var/lib/node_exporter/textfile", str(textfile))
        done = subprocess.run(
            [tab.variables.get("SHELL", "/bin/sh"), "-c", runnable],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        assert done.stdout == done.stderr == "", command  # cron mails any output

    # purge: the old replayed and discarded entries are gone, by the cron actor.
    left = conn.execute("SELECT status, failed_at FROM dlq ORDER BY failed_at").fetchall()
    assert [(r["status"], r["failed_at"] < now - timedelta(days=30)) for r in left] == [
        ("pending", True),
        ("replayed", False),
    ]
    actions = conn.execute("SELECT actor, action, outcome FROM dlq_actions").fetchall()
    assert actions == [{"actor": tab.variables["DLQCTL_ACTOR"], "action": "purge", "outcome": "ok"}]

    # stats: a complete OpenMetrics file under the name node-exporter reads, nothing else.
    assert [p.name for p in textfile.iterdir()] == ["dlq.prom"]
    families = {f.name: f for f in parse_openmetrics((textfile / "dlq.prom").read_text())}
    pending = [s for s in families["dlq_entries"].samples if s.labels["status"] == "pending"]
    assert [(s.labels["consumer"], s.value) for s in pending] == [("billing", 1)]


# -- Prometheus ----------------------------------------------------------------------------

PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset"}
PROMQL_KEYWORDS |= {"and", "or", "unless", "bool"}
_STRING = r'"(?:[^"\\]|\\.)*"'


@dataclass
class PromQL:
    metrics: set[str]
    matched_labels: dict[str, set[str]]  # metric -> label names in its {…} matchers
    grouping: set[str]  # labels in by (…), on (…) and the like
    kept: set[str] | None  # the labels an outer `by (…)` keeps, if the expression has one


def read_promql(expr: str) -> PromQL:
    matched: dict[str, set[str]] = {}
    for name, body in re.findall(r"([A-Za-z_:][\w:]*)\s*\{([^}]*)\}", expr):
        matched.setdefault(name, set()).update(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", body))
    clauses = re.findall(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", expr)
    grouping = {label.strip() for _, labels in clauses for label in labels.split(",")}
    by = [labels for word, labels in clauses if word == "by"]
    kept = {label.strip() for label in by[0].split(",")} if by else None
    bare = re.sub(_STRING, " ", expr)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", bare)
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    bare = re.sub(r"\b\d+(\.\d+)?([smhdwy]\b)?", " ", bare)
    words = re.findall(r"([A-Za-z_:][\w:]*)\s*(\(?)", bare)
    metrics = {w for w, call in words if not call and w not in PROMQL_KEYWORDS}
    return PromQL(metrics, matched, grouping, kept)


def real_metric_catalogue(cli: Any, db_url: str, conn: Any, bootstrap: str) -> dict[str, set[str]]:
    """Sample name → label names, from `stats -o openmetrics` and a consumer's /metrics."""
    catalogue: dict[str, set[str]] = {}
    insert_entries(conn, [entry(consumer="billing"), entry(consumer="billing", status="replayed")])
    stats = cli("stats", "-o", "openmetrics", env={"DLQCTL_DATABASE_URL": db_url})
    assert stats.exit_code == 0, stats.output
    families = list(parse_openmetrics(stats.stdout))

    topic = create_topic(bootstrap)
    produce(bootstrap, topic, [(None, encode(event(1)), None)])
    consumer = make_consumer(
        lambda _: None, make_settings(db_url, bootstrap), topic, metrics_port=0
    )
    with RunningConsumer(consumer) as running:
        running.wait_for(lambda: consumer.stats.handled == 1, what="the event handled")

        def scrape() -> list[Any]:
            url = consumer.metrics_url
            assert url is not None
            with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
                assert response.status == 200
                return list(parse_prometheus(response.read().decode()))

        running.wait_for(
            lambda: any(f.name == "dlqctl_consumer_lag" and f.samples for f in scrape()),
            what="a lag sample",
        )
        families += scrape()
    for family in families:
        for sample in family.samples:
            catalogue.setdefault(sample.name, set()).update(sample.labels)
    assert catalogue["dlq_oldest_pending_age_seconds"] == {"consumer"}
    assert catalogue["dlqctl_consumer_lag"] == {"consumer", "topic", "partition"}
    return catalogue


def test_alert_rules_use_only_real_metric_and_label_names(
    cli: Any, db_url: str, conn: Any, broker: Any
) -> None:
    catalogue = real_metric_catalogue(cli, db_url, conn, broker.bootstrap_servers)
    rules = [
        rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    ]
    names = {rule["alert"] for rule in rules}
    assert {
        "DlqGrowing",
        "DlqOldestPendingTooOld",
        "DlqConsumerCannotStore",
        "DlqReplayedEventsFailAgain",
    } <= names
    used: set[str] = set()
    for rule in rules:
        where = f"{ALERTS.name}: {rule['alert']}"
        query = read_promql(rule["expr"])
        assert query.metrics, where
        unknown = query.metrics - set(catalogue)
        assert not unknown, f"{where}: no such metric {sorted(unknown)}"
        labels = set().union(*(catalogue[m] for m in query.metrics)) | TARGET_LABELS
        for metric, matched in query.matched_labels.items():
            assert matched <= catalogue[metric] | TARGET_LABELS, f"{where}: {metric}{matched}"
        assert query.grouping <= labels, f"{where}: no such label {query.grouping - labels}"
        templated = set(re.findall(r"\$labels\.(\w+)", json.dumps(rule["annotations"])))
        available = query.kept if query.kept is not None else labels
        assert templated <= available, f"{where}: annotations use {templated - available}"
        assert re.fullmatch(r"\d+[smhd]", rule.get("for", "0s")), where
        assert rule["labels"]["severity"] in ("warning", "critical"), where
        assert rule["annotations"]["summary"], where
        used |= query.metrics
    # The two sources are both covered: the DLQ's gauges and the consumer's own metrics.
    assert {"dlq_entries", "dlq_oldest_pending_age_seconds"} <= used
    assert {"dlqctl_consumer_store_failing", "dlqctl_consumer_refailures_linked_total"} <= used


def test_promql_reader_finds_metrics_labels_and_grouping() -> None:
    query = read_promql(
        'sum by (consumer) (delta(dlq_entries{status="pending", consumer=~"a|b"}[1h]))'
        " > 24 * 3600 and on (job) up_metric offset 5m"
    )
    assert query.metrics == {"dlq_entries", "up_metric"}
    assert query.matched_labels == {"dlq_entries": {"status", "consumer"}}
    assert query.grouping == {"consumer", "job"}
    assert query.kept == {"consumer"}
