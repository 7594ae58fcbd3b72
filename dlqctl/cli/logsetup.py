"""Where dlqctl's log lines go: stderr, through the scrubber, one line each.

A module of its own so that `dlqctl --help` does not import ``logging`` (dlqctl/cli/app.py
imports this when a command runs).
"""

from __future__ import annotations

import logging
import sys
from typing import Any


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at emit time (the scrubbing stream of this run)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(debug: bool) -> None:
    """dlqctl's log lines go to stderr through the scrubber, one line each; DEBUG and up
    with ``debug``, else INFO and up."""
    logger = logging.getLogger("dlqctl")
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    if not any(isinstance(h, _CurrentStderrHandler) for h in logger.handlers):
        handler = _CurrentStderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
