"""Defaults of discard and purge (light: the CLI's option help reads them at import)."""

from __future__ import annotations

from dlqctl.core.models import Status

# Chosen from the purge benchmark (bench/results/purge.md): of 1k / 5k / 20k-row batches,
# the one that deleted fastest while a concurrent single-row writer waited least.
DEFAULT_PURGE_BATCH = 5_000
MAX_BATCH = 100_000
# An UPDATE writes a new row version and an entry in every index, about ten times the work of
# a DELETE per row (bench/results/purge.md); 1,000-row batches keep each discard transaction
# about as short as a purge batch.
DISCARD_BATCH = 1_000
PURGE_DEFAULT_STATUSES: tuple[Status, ...] = (Status.REPLAYED, Status.DISCARDED)
