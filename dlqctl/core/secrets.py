"""Finding the configured secret values and scrubbing them from any text we print.

libpq and librdkafka echo parts of connection strings and passwords in their own error
texts, so masking our own output is not enough: every line that reaches stderr or a log
passes through one :class:`Scrubber` built from the configured secrets.
"""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TextIO
from urllib.parse import quote, quote_plus, unquote

MASK = "***"
# Secrets shorter than this are left alone: masking every "ab" would garble all output.
MIN_SECRET_LENGTH = 3

# A librdkafka property (or setting) whose name contains one of these holds a secret.
SECRET_PROPERTY_MARKERS = (
    "password",
    "secret",
    ".pem",
    "private.key",
    "oauthbearer.config",
    "token",
    "credential",
    "jaas",
)

_URI_SCHEME = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.-]*://")
# Where a secret's pieces are cut: libpq and the URL syntax split a password there when they
# misread it (a '/' starts the path, an '@' the host), and error texts quote the pieces.
_WORD_SEPARATORS = re.compile(r"[\s'\"\\]+")
_PIECE_SEPARATORS = re.compile(r"[\s'\"\\/:@?#&=%]+")
# The start of the next key=value pair after an unquoted value (libpq ends the value at
# whitespace; a value with a space in it was meant to go on).
_NEXT_KEYWORD = re.compile(r"\s+[A-Za-z_]+\s*=")
# Pieces of a secret value that are its structure, not its secret: a PEM's armour, a URL's
# scheme (masking "https" in every line would garble them, and reveal nothing).
_STRUCTURAL_PIECES = frozenset(
    {"http", "https", "-----begin", "-----end", "private", "public", "key-----"}
    | {"certificate-----", "encrypted", "rsa", "true", "false", "null"}
)
_PARAMETER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def is_secret_property(name: str) -> bool:
    """Whether a librdkafka property (or setting) name holds a secret."""
    lowered = name.lower()
    return any(marker in lowered for marker in SECRET_PROPERTY_MARKERS)


@dataclass(frozen=True)
class _Secret:
    """One secret value of a connection string: where it is written, and how libpq reads it."""

    start: int
    end: int
    written: str
    read: str


def _percent_decoded(text: str) -> str:
    return unquote(text, errors="strict") if "%" in text else text


def _credentials_end(dsn: str, scheme_end: int) -> int:
    """Where a URI's user-info ends (the last ``@`` before the query), or -1 without one.

    An ``@`` in a well-formed query (``?application_name=a@b``) is not user-info; any other
    ``@`` may be, whatever libpq makes of a ``/`` or an ``@`` before it.
    """
    limit = len(dsn)
    slash = dsn.find("/", scheme_end)
    if slash >= 0:
        query = dsn.find("?", slash)
        if query >= 0 and _PARAMETER.match(dsn, query + 1):
            limit = query
    return dsn.rfind("@", scheme_end, limit)


def _uri_secrets(dsn: str, scheme_end: int) -> list[_Secret]:
    """The password(s) of a URI: as libpq reads it (user-info ends at the first ``@`` before
    any ``/``), everything between the scheme and the last ``@`` after the first ``:`` (what a
    password with an unencoded ``/`` or ``@`` was meant to be), and ``password=`` parameters."""
    found: list[_Secret] = []
    last_at = _credentials_end(dsn, scheme_end)
    if last_at >= 0:
        colon = dsn.find(":", scheme_end, last_at)
        if colon >= 0:
            written = dsn[colon + 1 : last_at]
            found.append(_Secret(colon + 1, last_at, written, _lenient_decode(written)))
        first_at, first_slash = dsn.find("@", scheme_end), dsn.find("/", scheme_end)
        if first_slash < 0 or first_at < first_slash:
            colon = dsn.find(":", scheme_end, first_at)
            if colon >= 0 and first_at != last_at:
                written = dsn[colon + 1 : first_at]
                found.append(_Secret(colon + 1, first_at, written, _lenient_decode(written)))
    query = dsn.find("?", max(last_at + 1, scheme_end))
    if query >= 0:
        position = query + 1
        for parameter in dsn[query + 1 :].split("&"):
            key, equals, value = parameter.partition("=")
            if equals and "password" in _lenient_decode(key).lower():
                start = position + len(key) + 1
                found.append(_Secret(start, start + len(value), value, _lenient_decode(value)))
            position += len(parameter) + 1
    return found


def _lenient_decode(text: str) -> str:
    try:
        return _percent_decoded(text)
    except UnicodeDecodeError:
        return text


def _keyvalue_secrets(dsn: str) -> list[_Secret]:
    """The password(s) of a key=value string, read as libpq's tokenizer reads them (quotes,
    backslash escapes); an unquoted value runs on to the next ``key=`` (a password with a
    space that was not quoted), an unterminated quoted one to the end."""
    found: list[_Secret] = []
    i, n = 0, len(dsn)
    while i < n:
        while i < n and dsn[i].isspace():
            i += 1
        key_start = i
        while i < n and dsn[i] != "=" and not dsn[i].isspace():
            i += 1
        key = dsn[key_start:i]
        while i < n and dsn[i].isspace():
            i += 1
        if i >= n or dsn[i] != "=":
            # libpq stops here ("missing '='"); what follows may still be a password's tail.
            i = max(i, key_start + 1)
            continue
        i += 1
        while i < n and dsn[i].isspace():
            i += 1
        start, value = i, []
        if i < n and dsn[i] == "'":
            i += 1
            while i < n and dsn[i] != "'":
                if dsn[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(dsn[i])
                i += 1
            written = dsn[start + 1 : i]
            i = min(i + 1, n)
            end = i
        else:
            while i < n and not dsn[i].isspace():
                if dsn[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(dsn[i])
                i += 1
            end = i
            written = dsn[start:end]
            if "password" in key.lower():
                following = _NEXT_KEYWORD.search(dsn, end)
                lenient_end = following.start() if following else len(dsn.rstrip())
                if lenient_end > end:
                    written = dsn[start:lenient_end]
                    found.append(_Secret(start, lenient_end, written, written))
        if "password" in key.lower():
            found.append(_Secret(start, end, written, "".join(value)))
    return found


def _dsn_secrets(dsn: str) -> list[_Secret]:
    scheme = _URI_SCHEME.match(dsn)
    return _uri_secrets(dsn, scheme.end()) if scheme else _keyvalue_secrets(dsn)


def dsn_passwords(dsn: str) -> list[str]:
    """The password(s) in a libpq URI or key=value string: as written and as libpq reads
    them (percent-decoded, unquoted), parsed leniently.

    Lenient on purpose: a DSN that libpq misreads or rejects is exactly when libpq echoes
    parts of it. In a URI everything between the scheme and the last ``@`` counts as
    credentials, whatever libpq makes of a ``/`` or an ``@`` in it.
    """
    found: list[str] = []
    for secret in _dsn_secrets(dsn):
        for value in (secret.written, secret.read):
            if value and value not in found:
                found.append(value)
    return found


def mask_dsn(dsn: str) -> str:
    """The DSN with its password(s) replaced by ``***`` (for showing where it points)."""
    spans: list[list[int]] = []
    for start, end in sorted((s.start, s.end) for s in _dsn_secrets(dsn) if s.end > s.start):
        if spans and start <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    masked, position = [], 0
    for start, end in spans:
        masked += [dsn[position:start], MASK]
        position = end
    masked.append(dsn[position:])
    return "".join(masked)


def without_credentials(dsn: str) -> str:
    """A URI without its user-info (everything between the scheme and the last ``@``, however
    libpq reads it) and without ``password`` parameters; a key=value string without its
    password values. For naming where a DSN points, never who connects."""
    scheme = _URI_SCHEME.match(dsn)
    if scheme:
        last_at = _credentials_end(dsn, scheme.end())
        if last_at >= 0:
            dsn = dsn[: scheme.end()] + dsn[last_at + 1 :]
    return mask_dsn(dsn)


def misread_uri(dsn: str) -> bool:
    """Whether a URI's password (between the first ``:`` of the user-info and the last ``@``)
    holds a ``/`` or an ``@``, which libpq does not read as part of it: libpq ends the
    user-info at the first ``@`` before any ``/``."""
    scheme = _URI_SCHEME.match(dsn)
    if not scheme:
        return False
    last_at = _credentials_end(dsn, scheme.end())
    colon = dsn.find(":", scheme.end(), max(last_at, scheme.end()))
    return colon >= 0 and any(c in dsn[colon + 1 : last_at] for c in "/@")


def secret_fragments(secret: str) -> set[str]:
    """The forms in which a secret may be echoed: as is, URL-encoded or decoded, escaped as
    JSON, Python or libpq text; and its pieces (what a misreading parser quotes)."""
    forms = {
        secret,
        _lenient_decode(secret),
        quote(secret, safe=""),
        quote(secret, safe="~!*()'"),
        quote(secret),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        secret.replace("\\", "\\\\").replace("'", "\\'"),
    }
    parts: set[str] = set()
    for form in forms:
        parts.update(_WORD_SEPARATORS.split(form))
        parts.update(_PIECE_SEPARATORS.split(form))
    parts = {p for p in parts if p.lower() not in _STRUCTURAL_PIECES}
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
        # Reentrant: a signal handler may log while this thread is inside write().
        self._lock = threading.RLock()

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
