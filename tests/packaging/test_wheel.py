"""dlqctl as a user gets it: the wheel, installed with pip into a fresh venv, run from a
directory outside the source tree (see docs/install.md).

The wheel is built and installed once per session. pip uses its configuration as set up on
the machine (the local wheel mirror, then PyPI) and installs no extras, as a plain
``pip install dlqctl`` does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dlqctl import __version__
from dlqctl.cli.completion import SHELLS
from tests.factories import entry, insert_entries

SOURCE = Path(__file__).resolve().parents[2]
MIGRATIONS = sorted(p.name for p in (SOURCE / "migrations").glob("*.sql"))


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    workdir: Path  # an empty directory outside the source tree, the commands' cwd
    home: Path

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The installed ``dlqctl`` console script, with a minimal environment."""
        return self.run_program(str(self.venv / "bin" / "dlqctl"), *args, env=env)

    def run_program(
        self, *argv: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        # Nothing from this process: no PYTHONPATH, no DLQCTL_*/PG*, no inherited venv.
        clean = {
            "PATH": f"{self.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "XDG_RUNTIME_DIR": str(self.home),
            **(env or {}),
        }
        return subprocess.run(
            argv,
            cwd=self.workdir,
            env=clean,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def _run(argv: list[str | os.PathLike[str]], cwd: Path) -> None:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{' '.join(map(str, argv))}\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel built from this tree (PEP 517, with this venv's hatchling) and installed."""
    root = tmp_path_factory.mktemp("wheel")
    dist, env_dir, workdir, home = (root / name for name in ("dist", "venv", "work", "home"))
    for directory in (workdir, home):
        directory.mkdir()
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            dist,
            SOURCE,
        ],
        cwd=root,
    )
    (wheel,) = dist.glob("dlqctl-*.whl")
    venv.EnvBuilder(with_pip=False).create(env_dir)
    # This venv's pip installs into the new one (--python): no ensurepip, no pip upgrade.
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            env_dir / "bin" / "python",
            "install",
            "--quiet",
            "--no-input",
            "--no-compile",
            wheel,
        ],
        cwd=root,
    )
    return Installed(wheel=wheel, venv=env_dir, workdir=workdir, home=home)


def test_the_wheel_holds_the_package_and_its_migrations(installed: Installed) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    packaged = sorted(n.split("/")[-1] for n in names if n.startswith("dlqctl/migrations/"))
    assert packaged == MIGRATIONS
    assert "dlqctl/py.typed" in names  # the library's type hints count for its users
    assert not [n for n in names if n.startswith(("tests/", "bench/", "migrations/"))]


def test_dlqctl_runs_from_the_venv_not_from_the_source_tree(installed: Installed) -> None:
    code = "import dlqctl, sys; print(dlqctl.__file__); print('\\n'.join(sys.path))"
    done = installed.run_program(str(installed.venv / "bin" / "python"), "-c", code)
    assert done.returncode == 0, done.stderr
    module, *path = done.stdout.splitlines()
    assert Path(module).is_relative_to(installed.venv), module
    assert not [p for p in path if p and Path(p).resolve().is_relative_to(SOURCE)], path

    version = installed.run("--version")
    assert version.returncode == 0, version.stderr
    assert __version__ in version.stdout


def test_migrate_and_list_from_the_wheel(installed: Installed, empty_db_url: str) -> None:
    env = {"DLQCTL_DATABASE_URL": empty_db_url}
    migrated = installed.run("migrate", "-o", "json", env=env)
    assert migrated.returncode == 0, migrated.stderr
    applied = json.loads(migrated.stdout)
    assert [Path(name).stem for name in applied["applied"]] == [Path(m).stem for m in MIGRATIONS]
    assert applied["pending"] == []

    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        (dlq_id,) = insert_entries(conn, [entry(consumer="billing")])

    listed = installed.run("list", "-o", "json", env=env)
    assert listed.returncode == 0, listed.stderr
    page: dict[str, Any] = json.loads(listed.stdout)
    assert [(item["dlq_id"], item["consumer"]) for item in page["items"]] == [
        (str(dlq_id), "billing")
    ]
    assert page["next_cursor"] is None


def test_demo_help_and_what_to_install_for_the_demo(installed: Installed) -> None:
    helped = installed.run("demo", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "Usage: dlqctl demo" in helped.stdout

    # The plain wheel has no demo extra: demo says what to install, starts nothing, exits 2.
    demo = installed.run("demo")
    assert demo.returncode == 2, demo.stdout + demo.stderr
    assert "dlqctl[demo]" in demo.stderr
    assert demo.stdout == ""


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_completion_scripts_match_the_checked_in_files(installed: Installed, shell: str) -> None:
    done = installed.run("completion", shell)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (SOURCE / "completions" / SHELLS[shell]).read_text()
