"""Every command documents itself with an example and appears in the README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main

from dlqctl.cli.app import app

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
COMMANDS = typer.main.get_command(app).commands  # type: ignore[attr-defined]


def test_every_documented_command_exists() -> None:
    expected = {
        "migrate",
        "list",
        "show",
        "stats",
        "replay",
        "discard",
        "purge",
        "consume",
        "history",
        "config",
        "demo",
        "completion",
        "edit",
        "backfill",
    }
    assert expected <= set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_help_has_an_example(name: str) -> None:
    help_text = COMMANDS[name].help or ""
    examples = re.findall(r"^Example: (dlqctl .+)$", help_text, re.MULTILINE)
    assert examples, f"`dlqctl {name} --help` has no 'Example: dlqctl ...' line"
    assert any(f" {name}" in example.split("#")[0] for example in examples), examples


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_is_in_the_readme(name: str) -> None:
    assert f"dlqctl {name}" in README
    assert re.search(rf"^\| `{name}[ `]", README, re.MULTILINE), (
        f"{name} is missing from the README's command table"
    )


def test_readme_quick_start_is_two_commands() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick_start.strip().splitlines()]
    assert commands == ["make demo", "make test"]
