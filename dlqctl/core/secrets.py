"""Finding the configured secret values and scrubbing them from any text we print.

libpq and librdkafka echo parts of connection strings and passwords in their own error
texts, so masking our own output is not enough: every line that reaches stderr or a log
passes through one :class:`Scrubber` built from the configured secrets.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterable, Mapping
from typing import TextIO
from urllib.parse import quote, unquote

MASK = "***"
# Secrets shorter than this are left alone: masking every "ab" would garble all output.
MIN_SECRET_LENGTH = 3

_URI_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://(?P<userinfo>[^@/?#]*)@")
_URI_PASSWORD_PARAM = re.compile(r"[?&]password=(?P<value>[^&#]*)")
_KV_PASSWORD = re.compile(r"(?:^|\s)password\s*=\s*(?P<value>'(?:[^'\\]|\\.)*'?|\S*)")


def is_secret_property(name: str) -> bool:
    """Whether a librdkafka property (or setting) name holds a secret."""
    lowered = name.lower()
    return "password" in lowered or "secret" in lowered


def dsn_passwords(dsn: str) -> list[str]:
    """The password(s) written in a libpq URI or key=value string, parsed leniently.

    Lenient on purpose: a DSN that libpq rejects is exactly when libpq echoes parts of it.
    """
    found: list[str] = []
    match = _URI_USERINFO.match(dsn)
    if match and ":" in match.group("userinfo"):
        found.append(match.group("userinfo").split(":", 1)[1])
    found.extend(m.group("value") for m in _URI_PASSWORD_PARAM.finditer(dsn))
    for m in _KV_PASSWORD.finditer(dsn):
        value = m.group("value")
        if value.startswith("'"):
            value = value[1:-1] if value.endswith("'") and len(value) > 1 else value[1:]
            value = re.sub(r"\\(.)", r"\1", value)
        found.append(value)
    return [p for p in found if p]


def mask_dsn(dsn: str) -> str:
    """The DSN with its password(s) replaced by ``***`` (for showing where it points)."""
    for password in sorted(dsn_passwords(dsn), key=len, reverse=True):
        dsn = dsn.replace(password, MASK)
    return dsn


def secret_fragments(secret: str) -> set[str]:
    """The forms in which a secret may be echoed: as is, URL-encoded or decoded, and its parts."""
    forms = {secret, unquote(secret), quote(secret, safe=""), quote(secret, safe="~!*()'")}
    parts: set[str] = set()
    for form in forms:
        parts.update(re.split(r"[\s'\"\\]+", form))
    return {f for f in forms | parts if len(f) >= MIN_SECRET_LENGTH}


class Scrubber:
    """Replaces every configured secret value in a text with ``***``."""

    def __init__(self, secrets: Iterable[str] = (), exact: Iterable[str] = ()) -> None:
        self._pattern: re.Pattern[str] | None = None
        self._secrets: set[str] = set()
        self.add(secrets, exact)

    def add(self, secrets: Iterable[str], exact: Iterable[str] = ()) -> None:
        """Add secrets (masked in all their forms) and exact strings (masked as written)."""
        for secret in secrets:
            if secret:
                self._secrets |= secret_fragments(secret)
        self._secrets |= {e for e in exact if len(e) >= MIN_SECRET_LENGTH}
        self._compile()

    def _compile(self) -> None:
        if self._secrets:
            # Longest first, so that a secret is masked whole rather than piece by piece.
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    @property
    def secrets(self) -> frozenset[str]:
        """Every string this scrubber masks."""
        return frozenset(self._secrets)

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)


def build_scrubber(
    database_url: str | None,
    kafka_configs: Iterable[Mapping[str, str]] = (),
    environ: Mapping[str, str] | None = None,
) -> Scrubber:
    """A scrubber of every secret in the effective settings (and libpq's PGPASSWORD)."""
    secrets: list[str] = []
    exact: list[str] = []
    if database_url:
        passwords = dsn_passwords(database_url)
        secrets.extend(passwords)
        if passwords:
            # Some libpq parse errors echo the whole connection string.
            exact.append(database_url)
    for config in kafka_configs:
        secrets.extend(v for k, v in config.items() if is_secret_property(k) and v)
    if environ is not None and environ.get("PGPASSWORD"):
        secrets.append(environ["PGPASSWORD"])
    return Scrubber(secrets, exact)


class ScrubbingStream(io.TextIOBase):
    """A text stream that scrubs whole lines before passing them to the wrapped stream.

    Text is buffered until a newline (or flush) so a secret split across two ``write``
    calls is still found.
    """

    def __init__(self, target: TextIO, scrubber: Scrubber) -> None:
        super().__init__()
        self.target = target
        self.scrubber = scrubber
        self._pending = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            if "\n" in self._pending:
                complete, _, self._pending = self._pending.rpartition("\n")
                self.target.write(self.scrubber(complete + "\n"))
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                self.target.write(self.scrubber(self._pending))
                self._pending = ""
        self.target.flush()

    def isatty(self) -> bool:
        return self.target.isatty()

    def fileno(self) -> int:
        return self.target.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.target, "encoding", "utf-8")

    def writable(self) -> bool:
        return True
