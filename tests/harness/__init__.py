"""Real services for the integration tests: PostgreSQL, SeaweedFS (S3) and Trino, started on
free loopback ports by the session fixtures in `tests/conftest.py`."""
