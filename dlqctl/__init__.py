"""dlqctl: inspect, replay, discard and purge dead-letter queues kept in PostgreSQL."""

__version__ = "0.1.0"
