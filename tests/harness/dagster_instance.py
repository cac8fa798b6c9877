"""A Dagster instance whose run, event-log and schedule storage is the test PostgreSQL."""

from pathlib import Path

import yaml

from tests.harness.postgres import PostgresService


def write_instance_config(home: Path, postgres: PostgresService, database: str) -> Path:
    """Write `dagster.yaml` in `home` pointing every storage at `database` on `postgres`.

    The password is written into the file only because the file lives in the session's private
    temp dir; the platform's own config takes it from an environment variable instead.
    """
    home.mkdir(parents=True, exist_ok=True)
    # `postgres_url` with an explicit driver: from `postgres_db` parts dagster-postgres builds a
    # bare `postgresql://` URL, which SQLAlchemy 2.1 maps to psycopg 3 (not installed; the
    # Dagster family brings psycopg2-binary).
    config = {
        "storage": {"postgres": {"postgres_url": postgres.url(database)}},
        "telemetry": {"enabled": False},
    }
    path = home / "dagster.yaml"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def open_instance(home: Path):
    """A fresh `DagsterInstance` object on the config in `home` (call again for a second one)."""
    import dagster as dg

    return dg.DagsterInstance.from_config(str(home))
