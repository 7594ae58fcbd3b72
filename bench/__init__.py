"""Benchmarks: dlqctl next to raw psycopg / confluent-kafka baselines measured in the same run."""
