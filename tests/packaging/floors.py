"""Check that every direct dependency is installed at the floor ``pyproject.toml`` declares.

``make test-lowest`` runs this in its own venv, right after installing with uv's
``--resolution lowest-direct``: a floor that no resolver can honour (because another
dependency needs more, or because that release cannot be installed) fails here, naming it,
instead of the lane quietly testing a newer release. Run as ``python -m tests.packaging.floors``.
"""

from __future__ import annotations

import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
# The extras the lane installs next to the runtime dependencies.
EXTRAS = ("test", "demo")


def direct_requirements(pyproject: dict[str, object]) -> list[Requirement]:
    """The runtime dependencies and those of the lane's extras (not dlqctl itself)."""
    project = pyproject["project"]
    assert isinstance(project, dict)
    lines = list(project["dependencies"])
    for extra in EXTRAS:
        lines += project["optional-dependencies"][extra]
    requirements = [Requirement(line) for line in lines]
    return [r for r in requirements if canonicalize_name(r.name) != "dlqctl"]


def floor(requirement: Requirement) -> Version | None:
    """The version of the requirement's ``>=`` clause, if it has one."""
    floors = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
    return max(floors, default=None)


def problems(requirements: list[Requirement]) -> list[str]:
    found = []
    for requirement in requirements:
        lowest = floor(requirement)
        if lowest is None:
            found.append(f"{requirement}: no floor (>=) declared")
            continue
        try:
            installed = Version(version(requirement.name))
        except PackageNotFoundError:
            found.append(f"{requirement}: not installed")
            continue
        if installed != lowest:
            found.append(
                f"{requirement}: {installed} installed, not the floor {lowest}"
                " (another dependency needs more, or that release cannot be installed)"
            )
    return found


def main() -> int:
    requirements = direct_requirements(tomllib.loads(PYPROJECT.read_text()))
    found = problems(requirements)
    for line in found:
        print(f"floor not real: {line}", file=sys.stderr)
    if not found:
        names = ", ".join(f"{r.name} {floor(r)}" for r in requirements)
        print(f"every direct dependency is installed at its floor: {names}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
