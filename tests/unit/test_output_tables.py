from __future__ import annotations

import pytest

from dlqctl.cli.output.writes import render_match_counts
from dlqctl.core.models import MatchCount, Status


def test_counts_table_shows_markup_like_names_literally(capsys: pytest.CaptureFixture[str]) -> None:
    render_match_counts(
        [MatchCount("[bold]svc[/bold] [red", Status.PENDING, 3)], title="to replay [x]"
    )
    shown = capsys.readouterr().err
    assert "[bold]svc[/bold] [red" in shown
    assert "to replay [x]" in shown
