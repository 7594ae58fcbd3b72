"""The chaos soak (see docs/operations.md): about a minute in `make test` (both PostgreSQL
lanes), minutes with `make soak` (SOAK_SECONDS=300). It prints the invariants as counts; a
failed invariant names the entries and events concerned, and the run's files (consumer log,
handler log, every dlqctl run's output, the PostgreSQL log) are kept for a look."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.soak.driver import Soak, SoakConfig

SECONDS = float(os.environ.get("SOAK_SECONDS") or 40)


@pytest.mark.soak
@pytest.mark.db  # its own PostgreSQL: runs again on the PostgreSQL 15 lane
@pytest.mark.kafka
@pytest.mark.timeout(int(SECONDS * 3 + 600))
def test_chaos_soak() -> None:
    # Not tmp_path: pytest keeps only the last few of those, and other runs share them.
    workdir = Path(tempfile.mkdtemp(prefix="dlqctl-soak-"))
    report = Soak(SoakConfig.from_env(workdir)).run()
    print(report.text())
    if os.environ.get("SOAK_REPORT"):
        Path(os.environ["SOAK_REPORT"]).write_text(json.dumps(report.figures, indent=2) + "\n")
    assert report.passed, f"{report.text()}\nthe run's files: {workdir}"
    if not os.environ.get("SOAK_KEEP"):
        shutil.rmtree(workdir, ignore_errors=True)
