"""Per-invocation state of the CLI: global options, lazily loaded settings, the scrubber."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import typer

from dlqctl.core.secrets import Scrubber, build_scrubber

if TYPE_CHECKING:
    from dlqctl.core.settings import LoadedSettings, Settings


def debug_from_env() -> bool:
    return os.environ.get("DLQCTL_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def early_scrubber(argv: Sequence[str]) -> Scrubber:
    """Secrets known before the settings are parsed: from the environment and --database-url.

    Built first so that even a settings error cannot echo a password.
    """
    kafka_configs: list[dict[str, str]] = []
    for name in ("KAFKA_CONFIG", "KAFKA_PRODUCER_CONFIG", "KAFKA_CONSUMER_CONFIG"):
        try:
            properties = json.loads(os.environ.get(f"DLQCTL_{name}", "") or "{}")
        except ValueError:
            continue
        if isinstance(properties, dict):
            kafka_configs.append({str(k): str(v) for k, v in properties.items()})
    scrubber = build_scrubber(None, kafka_configs, os.environ)
    urls = [os.environ.get("DLQCTL_DATABASE_URL", "")]
    for i, arg in enumerate(argv):
        if arg == "--database-url" and i + 1 < len(argv):
            urls.append(argv[i + 1])
        elif arg.startswith("--database-url="):
            urls.append(arg.split("=", 1)[1])
    for url in filter(None, urls):
        scrubber.add((), exact=build_scrubber(url).secrets)
    return scrubber


@dataclass
class AppState:
    """Global options of one invocation; settings are loaded on first use (imports are heavy)."""

    profile: str | None = None
    database_url: str | None = None
    debug: bool = False
    scrubber: Scrubber = field(default_factory=Scrubber)
    _loaded: LoadedSettings | None = None

    def loaded(self) -> LoadedSettings:
        if self._loaded is None:
            # Lazy (pydantic-settings): importing the CLI stays cheap; see test_startup.py.
            from dlqctl.core.settings import load_settings

            flags = {"profile": self.profile, "database_url": self.database_url}
            if self.debug:
                flags["debug"] = True  # type: ignore[assignment]
            self._loaded = load_settings(flags)
            self.scrubber.add((), exact=self._loaded.scrubber.secrets)
            self.debug = self.debug or self._loaded.settings.debug
        return self._loaded

    def settings(self) -> Settings:
        return self.loaded().settings


def app_state(ctx: typer.Context) -> AppState:
    """The AppState the root callback stored (a fresh one when a command runs on its own)."""
    root = ctx.find_root()
    if not isinstance(root.obj, AppState):
        root.obj = AppState()
    return root.obj
