"""librdkafka configuration shared by the producer (replay) and the embedded consumer."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from dlqctl.core.errors import ConfigError

# librdkafka's own log lines go through Python logging (and so through the CLI's scrubber)
# instead of straight to file descriptor 2.
LIBRDKAFKA_LOGGER = "dlqctl.librdkafka"


def client_config(
    base: Mapping[str, str], overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``base`` (from Settings.producer_config / consumer_config) plus ``overrides``, with
    librdkafka's logging routed through Python; ConfigError without bootstrap servers."""
    config: dict[str, Any] = {**base, **(overrides or {})}
    if not config.get("bootstrap.servers"):
        raise ConfigError(
            "no Kafka bootstrap servers: set DLQCTL_KAFKA_BOOTSTRAP_SERVERS"
            " (or kafka_bootstrap_servers in the config file)"
        )
    config["logger"] = logging.getLogger(LIBRDKAFKA_LOGGER)
    return config
