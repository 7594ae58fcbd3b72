"""`ruff format` decides layout: no source file opts out of it with a fmt: skip/off comment."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OPT_OUT = re.compile(r"#\s*fmt:\s*(skip|off)\b")


def opt_outs(root: Path) -> list[str]:
    """``path:line`` of each fmt: skip/off comment in the Python of dlqctl/, tests/ and bench/."""
    found = []
    for directory in ("dlqctl", "tests", "bench"):
        for path in sorted((root / directory).rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if OPT_OUT.search(line):
                    found.append(f"{path.relative_to(root)}:{number}")
    return found


def test_the_formatter_decides_layout_everywhere() -> None:
    assert opt_outs(ROOT) == [], "remove these markers and let `ruff format` lay the code out"
