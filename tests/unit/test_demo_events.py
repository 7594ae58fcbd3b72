"""The demo's generated events and its projector: they fail in the three advertised ways."""

from __future__ import annotations

import json

from dlqctl.usecases.demo import OrderProjector, generate_events


def test_generated_events_fail_in_three_ways() -> None:
    projector = OrderProjector()
    failures: dict[str, int] = {}
    for _key, value in generate_events():
        try:
            projector(json.loads(value))
        except Exception as exc:
            failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
    assert set(failures) == {"ValueError", "KeyError", "JSONDecodeError"}
    assert projector.handled + sum(failures.values()) == 1000
    projector.fixed = True
    assert all(
        projector(json.loads(v)) is None
        for _k, v in generate_events()
        if b"XBT" in v and b"customer_id" in v and v.endswith(b"}")
    )
