"""Opening a value in the operator's editor, as ``git commit`` does (see docs/edit.md).

The editor is ``$VISUAL``, else ``$EDITOR``, else ``vi``, split into words as a shell would
(``code --wait``, ``"/opt/my editor/bin/ed" -w``), with the file's path added as the last
argument. It runs in the foreground on the terminal; while it runs, dlqctl ignores SIGINT
and SIGQUIT (the editor gets them, as with git), so a Ctrl-C inside the editor never kills
it under the operator's hands.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from dlqctl.core.edit import SavedText
from dlqctl.core.errors import DlqctlError, UsageError

FALLBACK_EDITOR = "vi"


def on_terminal() -> bool:
    """Whether an editor can run here: stdin is a terminal, and stdout or stderr is one (the
    editor draws on it)."""
    return _isatty(sys.stdin) and (_isatty(sys.stdout) or _isatty(sys.stderr))


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):  # no stream, or a closed one
        return False


def editor_command(environ: dict[str, str] | None = None) -> tuple[list[str], str]:
    """The editor's command words and where they came from (``$VISUAL``, ``$EDITOR`` or the
    fallback)."""
    env = os.environ if environ is None else environ
    for name in ("VISUAL", "EDITOR"):
        value = env.get(name, "").strip()
        if not value:
            continue
        try:
            words = shlex.split(value)
        except ValueError as exc:
            raise UsageError(f"${name} ({value!r}) is not a command line: {exc}") from None
        if words:
            return words, f"${name}"
    return [FALLBACK_EDITOR], "the default editor"


class TerminalEditor:
    """Writes the text to a private temporary file, runs the editor on it, reads it back."""

    def __call__(self, text: str, *, name: str, suffix: str) -> SavedText:
        words, origin = editor_command()
        written = text.encode("utf-8")
        fd, raw_path = tempfile.mkstemp(prefix=f"dlqctl-edit-{name}-", suffix=suffix)
        path = Path(raw_path)
        with os.fdopen(fd, "wb") as file:  # mkstemp: readable by this user only
            file.write(written)
        try:
            code = self._run([*words, str(path)], origin)
            if code != 0:
                raise DlqctlError(
                    f"the editor ({shlex.join(words)}, from {origin}) exited with status"
                    f" {code}: nothing changed"
                )
            data = path.read_bytes()
        except BaseException:
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        return SavedText(data=data, path=path, written=written)

    def _run(self, argv: list[str], origin: str) -> int:
        # The editor draws on the terminal: stdout when it is one, else stderr's terminal.
        stdout = None if _isatty(sys.stdout) else sys.stderr
        try:
            process = subprocess.Popen(argv, stdout=stdout)
        except OSError as exc:
            raise UsageError(
                f"cannot start the editor {argv[0]!r} (from {origin}): {exc.strerror or exc};"
                " set VISUAL or EDITOR to an editor that is installed"
            ) from None
        with _signals_left_to(process):
            return process.wait()


@contextlib.contextmanager
def _signals_left_to(process: subprocess.Popen[bytes]) -> Iterator[None]:
    """While ``process`` runs, SIGINT and SIGQUIT reach only it (this process ignores them).
    Set after it started, so that it does not inherit the ignored dispositions."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGQUIT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
