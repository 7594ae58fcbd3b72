"""Shell completion's use case: consumer names from the table, read-only and quick."""

from __future__ import annotations

from dlqctl.core.settings import Settings
from dlqctl.db.completion import consumers_starting_with
from dlqctl.db.connection import read_only_session

APPLICATION_NAME = "dlqctl completion"
# A shell waits for the answer at every Tab: the server cancels a slower query.
STATEMENT_TIMEOUT_SECONDS = 2


def complete_consumers(settings: Settings, prefix: str) -> list[str]:
    """Consumer names that start with ``prefix``; dlqctl errors as every use case's."""
    with read_only_session(
        settings.dsn,
        application_name=APPLICATION_NAME,
        statement_timeout=STATEMENT_TIMEOUT_SECONDS,
    ) as conn:
        return consumers_starting_with(conn, prefix)
