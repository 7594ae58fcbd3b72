"""What README.md and docs/*.md state is true of the code.

- Every `dlqctl COMMAND … --flag` / `-x` in a code span or a code block names a command and
  options that exist (checked against the Typer app).
- Every `DLQCTL_*` name is a setting or a variable the code reads.
- Every `dlq_*` / `dlqctl_*` name is a metric dlqctl exposes (read from its real output) or
  a name of the code or schema (tables, columns, indexes), or a role the docs create.
- The exit codes of the README's exit-code table (and of any other such table) are the
  codes dlqctl exits with.
- No code comment or docstring cites the product contract document, which readers do not
  have (point to docs/ instead), and every docs/ page the code cites exists.

The extraction is deliberately simple (see the helpers below); each problem is reported as
file:line with what is wrong.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer.main
from prometheus_client import CollectorRegistry, generate_latest

from dlqctl.cli import app as app_module
from dlqctl.cli.output.machine import openmetrics_text
from dlqctl.core import errors
from dlqctl.core.models import DlqStats, Status
from dlqctl.core.settings import ENV_PREFIX, Settings
from dlqctl.kafka.metrics import ConsumerCollector, ConsumerSnapshot

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Where the code lives, for the names it defines and the comments it carries.
CODE_DIRS = ("dlqctl", "tests", "bench", "migrations")
CODE_SUFFIXES = (".py", ".sql", ".md", ".txt", ".toml")


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _code_files(*dirs: str) -> list[Path]:
    return sorted(
        path
        for directory in dirs
        for path in (ROOT / directory).rglob("*")
        if path.suffix in CODE_SUFFIXES and path.is_file() and "__pycache__" not in path.parts
    )


# --- reading the docs -------------------------------------------------------------------


@dataclass(frozen=True)
class Snippet:
    """A code span, or a line of a code block (with its backslash continuations)."""

    path: Path
    line: int
    text: str

    @property
    def where(self) -> str:
        return f"{_rel(self.path)}:{self.line}"


def _doc_lines(path: Path) -> list[str]:
    """The lines of a page with HTML comments blanked out (they are not shown), so that line
    numbers stay those of the file."""
    text = re.sub(
        r"<!--.*?-->", lambda m: "\n" * m.group().count("\n"), path.read_text(), flags=re.S
    )
    return text.splitlines()


def _snippets(path: Path) -> Iterator[Snippet]:
    fence: str | None = None
    pending: tuple[int, str] | None = None
    for number, line in enumerate(_doc_lines(path), start=1):
        stripped = line.strip()
        if fence is None and stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
            continue
        if fence is not None:
            if stripped.startswith(fence):
                fence = None
                continue
            start, text = pending or (number, "")
            if line.rstrip().endswith("\\"):
                pending = (start, text + line.rstrip()[:-1] + " ")
                continue
            pending = None
            yield Snippet(path, start, text + line)
            continue
        # Inline code spans; "\|" is a pipe escaped for a table cell.
        for match in re.finditer(r"(`+)(.+?)\1", line):
            yield Snippet(path, number, match.group(2).replace("\\|", "|"))


def _all_snippets() -> list[Snippet]:
    return [snippet for path in DOCS for snippet in _snippets(path)]


def _text_lines() -> Iterator[tuple[str, str]]:
    """(file:line, line) of every line of every page, code or prose."""
    for path in DOCS:
        for number, line in enumerate(_doc_lines(path), start=1):
            yield f"{_rel(path)}:{number}", line


# --- command lines ----------------------------------------------------------------------

ROOT_COMMAND: Any = typer.main.get_command(app_module.app)
HELP_OPTIONS = ("-h", "--help")
PUNCTUATION = set("();<>|&")


def _tokens(text: str) -> list[str]:
    """Shell words, with operators (|, ;, &&, >, parentheses) as words of their own; plain
    whitespace splitting when the text is not valid shell (a quote cut by wrapped help)."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:
        return text.split()


def _options(command: Any) -> dict[str, Any]:
    found: dict[str, Any] = dict.fromkeys(HELP_OPTIONS)
    for param in command.params:
        if param.param_type_name == "option":
            for opt in [*param.opts, *param.secondary_opts]:
                found[opt] = param
    return found


def _takes_value(param: Any) -> bool:
    return param is not None and not param.is_flag and not param.count


def _choices(param: Any) -> set[str] | None:
    """The values an option accepts when they are a fixed set (Typer keeps them on a
    type descriptor, click on the parameter's type), else None."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None:
        values = descriptor.choices if descriptor.is_choice else None
    else:
        values = getattr(getattr(param, "type", None), "choices", None)
    if not values:
        return None
    return {str(getattr(value, "value", value)).lower() for value in values}


def _takes_arguments(command: Any) -> bool:
    return any(param.param_type_name == "argument" for param in command.params)


def _invocation_problems(words: list[str], *, certain: bool) -> list[str]:
    """What is wrong with ``dlqctl WORDS…``: an unknown command or option. An unknown
    command is reported only when the mention is ``certain`` to be a command line (see
    _at_command_position): "the dlqctl schema" or a crontab's user column are not."""
    command, path = ROOT_COMMAND, "dlqctl"
    problems: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word == "--" or set(word) <= PUNCTUATION:
            break  # the end of options, or of this command (a pipe, a redirection, …)
        option = re.match(r"--?[A-Za-z][A-Za-z0-9-]*", word)
        if option:
            options = _options(command)
            name = option.group()
            if name in options:
                param, rest = options[name], word[len(name) :]
                if _takes_value(param):
                    value = rest.removeprefix("=") if rest else (words[i] if i < len(words) else "")
                    i += 0 if rest else 1  # its value is the next word
                    choices = _choices(param)
                    if choices and re.fullmatch(r"[a-z]+", value) and value not in choices:
                        problems.append(f"`{path} {name}` takes no {value!r}")
            elif not name.startswith("--") and all(f"-{c}" in options for c in name[1:]):
                pass  # short flags run together: -qy
            elif not name.startswith("--") and _takes_value(options.get(name[:2])):
                pass  # a short option with its value attached: -n5
            else:
                problems.append(f"`{path}` has no option {name}")
            continue
        name = word.strip("`'\".,:;")
        if hasattr(command, "commands") and command.commands:
            if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
                break  # a placeholder (COMMAND, <command>, …): nothing to check
            if name not in command.commands:
                if certain:
                    problems.append(f"`{path}` has no command {name!r}")
                break
            command, path = command.commands[name], f"{path} {name}"
        elif certain and not _takes_arguments(command) and re.fullmatch(r"[a-z0-9][\w.-]*", name):
            problems.append(f"`{path}` takes no arguments ({name!r})")
        # else: an argument of the command (an id, a shell name), or a placeholder
    return problems


# Words after which "dlqctl" starts a command: wrappers, prompts, "Example:"/"Usage:".
WRAPPERS = {"$", "#", "sudo", "exec", "env", "nohup", "time", "watch", "-m", "xargs"}


def _at_command_position(previous: str | None) -> bool:
    return (
        previous is None
        or set(previous) <= PUNCTUATION
        or previous in WRAPPERS
        or previous.endswith(":")
        or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S*", previous) is not None
    )


def command_line_problems(snippet: Snippet) -> list[str]:
    words = _tokens(snippet.text)
    problems = []
    for i, word in enumerate(words):
        if word.strip("`") == "dlqctl" or word.endswith("/dlqctl"):
            certain = _at_command_position(words[i - 1] if i else None)
            following = words[i + 1 :]
            if word.startswith("`"):  # `dlqctl …` quoted in a help text: up to the backtick
                end = next((j for j, w in enumerate(following) if w.endswith("`")), None)
                if end is not None:
                    following = [*following[:end], following[end].rstrip("`")]
            problems += [
                f"{snippet.where}: {p} ({snippet.text.strip()})"
                for p in _invocation_problems(following, certain=certain)
            ]
    return problems


def test_commands_and_options_in_the_docs_exist() -> None:
    problems = [p for snippet in _all_snippets() for p in command_line_problems(snippet)]
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("dlqctl list -c orders --since 2h -o json", None),
        ("dlqctl --profile prod config", None),
        ("DLQCTL_DEBUG=1 /usr/bin/dlqctl purge --older-than 30d -qy | tee log", None),
        ("dlqctl replay --topic=orders --canary 5 --yes && dlqctl stats", None),
        ("dlqctl COMMAND --help", None),
        ("dlqctl list --frobnicate", "`dlqctl list` has no option --frobnicate"),
        ("dlqctl stats -z", "`dlqctl stats` has no option -z"),
        ("dlqctl list -n5 -corders", None),
        ("dlqctl --verbose list", "`dlqctl` has no option --verbose"),
        ("dlqctl requeue 0193a1b2", "`dlqctl` has no command 'requeue'"),
        ("x | dlqctl requeue", "`dlqctl` has no command 'requeue'"),
        ("dlqctl replay -o ndjson", "`dlqctl replay -o` takes no 'ndjson'"),
        ("dlqctl list -o=ndjson --status=pending -o FORMAT", None),
        ("dlqctl list --status=waiting", "`dlqctl list --status` takes no 'waiting'"),
        ("dlqctl purge 0193a1b2 --older-than 30d", "`dlqctl purge` takes no arguments"),
        ("dlqctl purge [OPTIONS] ID...", None),
        ("see ~/x; `dlqctl config` shows them.", None),
        ("see ~/x; `dlqctl config --bogus` shows them.", "`dlqctl config` has no option --bogus"),
        ("Example: dlqctl requeue", "`dlqctl` has no command 'requeue'"),
        ("the dlqctl schema is missing; run dlqctl migrate", None),
        ("17 3 * * * dlqctl timeout 2h dlqctl purge --older-than 30d --yes", None),
        (
            "17 3 * * * dlqctl timeout 2h dlqctl purge --older-then 30d",
            "has no option --older-then",
        ),
        ("dlqctl list | grep --color x; dlqctl show 0193a1b2 --bogus", "has no option --bogus"),
        ("dlqctl purge --older-than 30d \\\n  --dry-rum", "`dlqctl purge` has no option --dry-rum"),
    ],
)
def test_the_command_line_check_catches_what_it_should(text: str, problem: str | None) -> None:
    snippet = Snippet(ROOT / "README.md", 1, text.replace("\\\n", " "))
    problems = command_line_problems(snippet)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0], problems


def test_code_blocks_and_spans_are_found(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Run `dlqctl stats` then:\n\n```sh\ndlqctl purge \\\n  --older-than 30d\n```\n"
        "<!-- `dlqctl hidden` -->\n| `a \\| b` |\n"
    )
    found = [(s.line, s.text) for s in _snippets(page)]
    assert found == [(1, "dlqctl stats"), (4, "dlqctl purge    --older-than 30d"), (8, "a | b")]


# --- DLQCTL_* variables -----------------------------------------------------------------

# os.environ.get("DLQCTL_X"), environ[f"{ENV_PREFIX}X"], os.getenv("DLQCTL_X"), …
_ENV_READ = re.compile(
    r"(?:environ\.get\(|environ\[|getenv\()\s*f?[\"'](?:\{ENV_PREFIX\}|DLQCTL_)([A-Z0-9_]+)[\"']"
)


def known_variables() -> set[str]:
    """The settings' variables, and the DLQCTL_* variables the code and tests read."""
    names = {ENV_PREFIX + field.upper() for field in Settings.model_fields}
    for path in _code_files("dlqctl", "tests"):
        read = {"DLQCTL_" + name for name in _ENV_READ.findall(path.read_text())}
        if path.is_relative_to(ROOT / "tests"):  # a test may read a variable it set itself
            read = {name for name in read if name.startswith("DLQCTL_TEST_")}
        names |= read
    return names


def test_environment_variables_in_the_docs_exist() -> None:
    known = known_variables()
    assert {"DLQCTL_DATABASE_URL", "DLQCTL_CONFIG", "DLQCTL_PROFILE", "DLQCTL_DEBUG"} <= known
    problems = [
        f"{where}: {name} is neither a setting nor a variable dlqctl reads"
        for where, line in _text_lines()
        for name in re.findall(r"\bDLQCTL_[A-Z0-9_]*[A-Z0-9]\b", line)
        if name not in known
    ]
    assert problems == [], "\n".join(problems)


# --- metric and other dlq_* names -------------------------------------------------------

NAME = re.compile(r"\bdlq(?:ctl)?_[a-z0-9_]*[a-z0-9]")


def exposed_metrics() -> set[str]:
    """The metric names in dlqctl's real output: the consumer's /metrics and
    `stats -o openmetrics` (families and samples)."""
    registry = CollectorRegistry()
    registry.register(ConsumerCollector(lambda: ConsumerSnapshot(consumer="c", lag={("t", 0): 1})))
    stats = DlqStats(counts=(), oldest_pending={}, error_groups=(), as_of=datetime.now(UTC))
    text = generate_latest(registry).decode() + openmetrics_text(stats, list(Status))
    names = set()
    for line in text.splitlines():
        words = line.split()
        if line.startswith("# TYPE"):
            names.add(words[2])
        elif words and not line.startswith("#"):
            names.add(words[0].split("{")[0])
    return names


def declared_in_docs() -> set[str]:
    """Names the docs choose themselves: roles (CREATE ROLE x, GRANT … TO x, user@ in a
    connection URL)."""
    text = "\n".join(line for path in DOCS for line in _doc_lines(path))
    patterns = (
        r"CREATE\s+(?:ROLE|USER)\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)",
        r"\bTO\s+(\w+)",
        r"\bOWNER\s+TO\s+(\w+)",
        r"postgres(?:ql)?://(\w+)[@:]",
    )
    return {name for pattern in patterns for name in re.findall(pattern, text)}


def test_metric_and_schema_names_in_the_docs_exist() -> None:
    metrics = exposed_metrics()
    assert "dlq_entries" in metrics
    assert "dlqctl_consumer_events_stored_total" in metrics
    in_code = {
        name
        for path in _code_files("dlqctl", "migrations")
        for name in NAME.findall(path.read_text())
    }
    known = metrics | in_code | declared_in_docs()
    problems = [
        f"{where}: {name} is neither a metric dlqctl exposes nor a name in its code or schema"
        for where, line in _text_lines()
        for name in NAME.findall(line)
        if name not in known
    ]
    assert problems == [], "\n".join(problems)


# --- JSON keys --------------------------------------------------------------------------

# A key of a JSON sample (`"key": …`), and a field a jq filter reads (`jq -r .canary.outcome`).
JSON_KEY = re.compile(r'"([a-z_][a-z0-9_]*)"\s*:')
JQ_FILTER = re.compile(r"\bjq\b(.*)")
JQ_PATH = re.compile(r"(?<![\w$/])\.(?:[a-z_][a-z0-9_]*|\[\d*\])(?:\.?\[\d*\]|\.[a-z_][a-z0-9_]*)*")


def json_keys(text: str) -> set[str]:
    """The JSON keys a line of the docs shows or reads."""
    keys = set(JSON_KEY.findall(text))
    jq = JQ_FILTER.search(text)
    if jq:
        for path in JQ_PATH.findall(jq.group(1)):
            keys |= set(re.findall(r"[a-z_][a-z0-9_]*", path))
    return keys


def code_words() -> set[str]:
    """Every identifier and word of dlqctl's code and schema: a key of its machine output is
    one of them (a dict key, a field or a column name)."""
    return {
        word
        for path in _code_files("dlqctl", "migrations")
        for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", path.read_text())
    }


def test_json_keys_in_the_docs_exist_in_the_code() -> None:
    known = code_words()
    problems = [
        f"{snippet.where}: JSON key {key!r} is not a name in dlqctl's code or schema"
        for snippet in _all_snippets()
        for key in sorted(json_keys(snippet.text))
        if key not in known
    ]
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ('{"dlq_id": "0193…", "replayed": 3}', {"dlq_id", "replayed"}),
        (
            "dlqctl replay … -o json > replay.json; jq -r .canary.outcome replay.json",
            {"canary", "outcome"},
        ),
        ("jq -c '{dlq_id, changed}' | jq .[0].failures", {"failures"}),
        ("cat replay.json", set()),
    ],
)
def test_json_keys_are_found(text: str, keys: set[str]) -> None:
    assert json_keys(text) == keys
    assert "replayed_count" not in code_words()


# --- exit codes -------------------------------------------------------------------------


def exit_codes() -> set[int]:
    """Every exit code dlqctl uses: the error classes' codes and the CLI's own (141)."""
    codes = {value for name, value in vars(errors).items() if name.startswith("EXIT_")}
    codes |= {value for name, value in vars(app_module).items() if name.startswith("EXIT_")}
    return codes


def exit_code_tables(path: Path) -> list[tuple[int, set[int]]]:
    """(line, codes) of each table under an "Exit codes" heading whose first column is
    `code`."""
    tables: list[tuple[int, set[int]]] = []
    heading = ""
    lines = _doc_lines(path)
    for number, line in enumerate(lines, start=1):
        if line.startswith("#"):
            heading = line
        cells = [cell.strip().lower() for cell in line.strip().strip("|").split("|")]
        if "exit code" in heading.lower() and line.startswith("|") and cells[0] == "code":
            codes = set()
            for row in lines[number + 1 :]:
                if not row.startswith("|"):
                    break
                first = row.strip("|").split("|")[0].strip()
                codes.add(int(first)) if first.isdigit() else None
            tables.append((number, codes))
    return tables


def test_the_readme_states_the_exit_codes_dlqctl_uses() -> None:
    assert exit_codes() == {0, 1, 2, 3, 130, 141}
    tables = exit_code_tables(ROOT / "README.md")
    assert tables, "README.md has no exit-code table (| code | meaning | under 'Exit codes')"
    problems = [
        f"{_rel(path)}:{line}: the table lists {sorted(codes)}, dlqctl uses {sorted(exit_codes())}"
        for path in DOCS
        for line, codes in exit_code_tables(path)
        if codes != exit_codes()
    ]
    assert problems == [], "\n".join(problems)


# --- the code's comments ----------------------------------------------------------------


# Pages the code cites that the docs do not have yet. Remove a page from here once it
# exists (the test below says so).
def test_no_comment_cites_the_contract_document() -> None:
    """Readers do not have that document: comments and docstrings point to docs/ pages."""
    word = "SP" + "EC"
    problems = [
        f"{_rel(path)}:{number}: {line.strip()}"
        for path in _code_files(*CODE_DIRS)
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(rf"\b{word}\b", line)
    ]
    assert problems == [], f"cite a docs/ page instead of {word}:\n" + "\n".join(problems)


def test_the_docs_pages_the_code_cites_exist() -> None:
    cited: dict[str, str] = {}
    for path in [*_code_files(*CODE_DIRS), ROOT / "Makefile", ROOT / "pyproject.toml"]:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            for page in re.findall(r"(?<![\w/])docs/[\w./-]*\w\.md\b", line):
                cited.setdefault(page, f"{_rel(path)}:{number}")
    missing = [
        f"{where}: {page} does not exist"
        for page, where in sorted(cited.items())
        if not (ROOT / page).is_file()
    ]
    assert missing == [], "\n".join(missing)
