"""docs/commands.md, the command reference, is what the commands' --help prints today."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dlqctl.cli.reference import HelpPage, help_pages, reference
from tests.cli_helpers import run_dlqctl_process

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "commands.md"
PAGES = help_pages()


def test_the_reference_is_current() -> None:
    assert PAGE.read_text(encoding="utf-8") == reference(), (
        "docs/commands.md is stale: run `make docs`"
    )


def test_the_reference_does_not_depend_on_the_machine(tmp_path: Path) -> None:
    """Another user, home, terminal width and colour settings: the same page, byte for byte,
    and none of those values in it."""
    odd = {
        "HOME": str(tmp_path / "someone-elses-home"),
        "USER": "someone-else-entirely",
        "LOGNAME": "someone-else-entirely",
        "COLUMNS": "41",
        "LINES": "7",
        "TERM": "xterm-256color",
        "FORCE_COLOR": "1",
        "CLICOLOR_FORCE": "1",
        "DLQCTL_PROFILE": "elsewhere",
    }
    result = subprocess.run(
        [sys.executable, "-m", "dlqctl.cli.reference", "-"],
        env={**os.environ, **odd},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == reference(), "the reference changes with the environment"
    assert "\x1b" not in result.stdout
    for value in ("someone-else", str(tmp_path), str(Path.home())):
        assert value not in result.stdout


def test_the_reference_covers_every_command() -> None:
    page = PAGE.read_text(encoding="utf-8")
    paths = [help_page.command_path for help_page in PAGES]
    assert paths[0] == "dlqctl"
    assert len(paths) == len(set(paths)) > 10
    for path in paths[1:]:
        assert f"\n## {path}\n" in page, path
    assert "\n## dlqctl (global options)\n" in page
    assert "--database-url URL" in page  # a global option


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.command_path)
def test_each_section_is_what_help_prints(page: HelpPage) -> None:
    """Each section is what `dlqctl … --help` prints on a terminal 80 columns wide (a real
    process: CliRunner renders help at a width of its own)."""
    result = run_dlqctl_process(*page.command_path.split()[1:], "--help", env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == page.text + "\n"
