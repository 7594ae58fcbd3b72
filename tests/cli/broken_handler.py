"""A handler module whose import fails (for `dlqctl consume --handler` error tests)."""

raise RuntimeError("missing ORDERS_API_URL")
