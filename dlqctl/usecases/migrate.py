"""`dlqctl migrate`: apply the schema migrations (the runner is dlqctl.db.migrations)."""

from __future__ import annotations

from dlqctl.core.settings import Settings
from dlqctl.db.migrations import MigrationResult
from dlqctl.db.migrations import migrate as apply_migrations


def migrate(settings: Settings, *, dry_run: bool = False) -> MigrationResult:
    """Apply every pending migration (with ``dry_run``, only list them)."""
    return apply_migrations(settings.dsn, dry_run=dry_run)
