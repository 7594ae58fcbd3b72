"""Errors of dlqctl: each carries the exit code the CLI edge turns it into.

The docstring of each class is its default message.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_INTERRUPTED = 130


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (drivers add hints on further lines)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


class DlqctlError(Exception):
    """dlqctl failed."""

    exit_code: int = EXIT_FAILED

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


class UsageError(DlqctlError):
    """Invalid usage."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """The settings are not valid."""


class ConfirmationRequired(UsageError):
    """Refusing to change entries without confirmation: pass --yes to run non-interactively."""


class AmbiguousIdError(UsageError):
    """The id prefix matches more than one entry."""

    def __init__(self, prefix: str, candidates: list[str]) -> None:
        shown = ", ".join(candidates)
        super().__init__(f"id prefix {prefix!r} is ambiguous; it matches: {shown}")
        self.prefix = prefix
        self.candidates = candidates


class NotFoundError(DlqctlError):
    """Nothing found."""

    exit_code = EXIT_NOT_FOUND


class DatabaseError(DlqctlError):
    """The database operation failed."""


class DatabaseUnavailable(DatabaseError):
    """Cannot connect to PostgreSQL."""


class SchemaMissing(DatabaseError):
    """The dlq table or a dlqctl column is missing: run `dlqctl migrate` first."""


class MigrationError(DatabaseError):
    """A migration failed."""


class KafkaError(DlqctlError):
    """The Kafka operation failed."""


class MissingExtra(UsageError):
    """An optional dependency is missing."""


class Interrupted(DlqctlError):
    """Interrupted."""

    exit_code = EXIT_INTERRUPTED


class RunEnded(DlqctlError):
    """The run ended; its summary is already printed."""

    def __init__(self, exit_code: int, error: str | None = None) -> None:
        """Raised by a command after it printed a run's summary: the CLI boundary prints just
        ``error`` (if any) as the one error line and exits with ``exit_code``."""
        super().__init__(error)
        self.exit_code = exit_code
        self.error = error
