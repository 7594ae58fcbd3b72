"""`dlqctl consume`: run the embedded consumer with a handler named as ``module:function``."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from dlqctl.core.errors import UsageError
from dlqctl.core.settings import Settings
from dlqctl.kafka.consumer import DEFAULT_METRICS_HOST, DlqConsumer


def load_handler(spec: str) -> Callable[[Any], object]:
    """The callable ``module:function`` names (``module:obj.attr`` too); UsageError if not.

    The working directory is importable, as for other tools that run an app by name.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise UsageError(
            f"--handler {spec!r} is not module:function (e.g. myservice.handlers:on_event)"
        )
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise UsageError(f"cannot import handler module {module_name!r}: {exc}") from None
        raise UsageError(
            f"importing handler module {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    except Exception as exc:
        raise UsageError(
            f"importing handler module {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise UsageError(
                f"handler {spec!r} not found: {module_name!r} has no attribute {attribute!r}"
            ) from None
    if not callable(target):
        raise UsageError(f"handler {spec!r} is not callable")
    handler: Callable[[Any], object] = target
    return handler


def build_consumer(
    settings: Settings,
    *,
    consumer: str,
    topics: Sequence[str],
    handler: str,
    group_id: str | None = None,
    retries: int | None = None,
    metrics_port: int | None = None,
    metrics_host: str = DEFAULT_METRICS_HOST,
) -> DlqConsumer:
    """The embedded consumer for ``dlqctl consume``, with the handler loaded from its spec."""
    return DlqConsumer(
        load_handler(handler),
        consumer=consumer,
        topics=list(dict.fromkeys(topics)),
        group_id=group_id,
        settings=settings,
        retries=retries,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
    )
