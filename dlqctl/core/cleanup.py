"""Defaults of discard and purge (light: the CLI's option help reads them at import)."""

from __future__ import annotations

from dlqctl.core.models import Status

# Chosen from the purge benchmark (bench/results/purge.md, 1M rows, a writer inserting every
# 5 ms): 5,000-row batches deleted fastest (240k rows/s median vs 200k at 1,000 and 207k at
# 20,000), each batch took ~19 ms (88 ms at 20,000), and the writer's worst wait was lowest
# (16 ms vs 22 and 32 ms).
DEFAULT_PURGE_BATCH = 5_000
MAX_BATCH = 100_000
# An UPDATE writes a new row version and an entry in every index: over ten times the work of
# a DELETE per row (bench/results/purge.md: ~16k vs ~240k rows/s). 1,000-row batches keep
# each discard transaction short (~57 ms).
DISCARD_BATCH = 1_000
PURGE_DEFAULT_STATUSES: tuple[Status, ...] = (Status.REPLAYED, Status.DISCARDED)
