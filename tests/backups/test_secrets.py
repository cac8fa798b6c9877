"""Secrets stay secret through the backups: the PostgreSQL password, the backup key and both S3
secret keys appear nowhere Dagster records (events, run, snapshots, the instance's files, the
UI's resource view), nor on the process's output, for a good night and for failing ones."""

import dagster as dg
import pytest

from platform_assets.backups.postgres import PlatformPostgres
from platform_assets.backups.resources import BackupKeyResource
from platform_assets.backups.sealing import generate_key
from resources.object_store import S3ObjectStore
from tests.backups.conftest import BACKUPS, LAKE_NIGHTLY, NO_CLUSTER, failed_checks, fill_database
from tests.harness.postgres import PG_BIN
from tests.integration.test_secrets_stay_secret import assert_absent, recorded

pytestmark = [pytest.mark.service]

NIGHT = "2026-03-05"
WRONG_PASSWORD = "wrong-backup-pass/Ux4:Lp9@"  # noqa: S105 (a test value)


@pytest.fixture
def env(monkeypatch, postgres, s3, nas):
    """Every secret only in an environment variable, as on the cluster."""
    values = {
        "T_PG_PASSWORD": postgres.password,
        "T_BACKUP_KEY": generate_key(),
        "T_LAKE_SECRET": s3.secret_key,
        "T_NAS_SECRET": nas.secret_key,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def resources(postgres, s3, nas, password_var="T_PG_PASSWORD", key_var="T_BACKUP_KEY"):
    import uuid

    database = "bk_secret_" + uuid.uuid4().hex[:6]
    fill_database(postgres, database, 20)

    def store(service, prefix, secret_var, roles=("landing", "warehouse", "quarantine", "backups")):
        return S3ObjectStore(
            endpoint=service.endpoint,
            access_key=service.access_key,
            secret_key=dg.EnvVar(secret_var),
            buckets=service.make_buckets(f"{prefix}-{uuid.uuid4().hex[:8]}", roles),
            secure=False,
        )

    return {
        "object_store": store(s3, "lake", "T_LAKE_SECRET"),
        "backup_mirror": store(nas, "nas", "T_NAS_SECRET", ("mirror",)),
        "backup_key": BackupKeyResource(key=dg.EnvVar(key_var), variable=key_var),
        **NO_CLUSTER,
        "platform_postgres": PlatformPostgres(
            host=postgres.host,
            port=postgres.port,
            user=postgres.user,
            password=dg.EnvVar(password_var),
            databases=[database],
            pg_bin=str(PG_BIN),
        ),
    }


def night(instance, res) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        BACKUPS,
        selection=LAKE_NIGHTLY,
        partition_key=NIGHT,
        resources=res,
        instance=instance,
        raise_on_error=False,
    )


def errors_of(result) -> str:
    return "\n".join(
        e.event_specific_data.error.to_string()
        for e in result.all_events
        if e.is_step_failure and e.event_specific_data.error is not None
    )


def test_a_good_night_records_no_secret(env, postgres, s3, nas, tmp_path, capfd):
    home = tmp_path / "home"
    home.mkdir()
    secrets = {
        "the PostgreSQL password": env["T_PG_PASSWORD"],
        "the backup key": env["T_BACKUP_KEY"],
        "the object store's S3 secret key": env["T_LAKE_SECRET"],
        "the NAS's S3 secret key": env["T_NAS_SECRET"],
    }
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        result = night(instance, resources(postgres, s3, nas))
        assert result.success, failed_checks(result)
        assert failed_checks(result) == {}
        assert_absent(recorded(instance, result.run_id, home), secrets, "the run's records")
    out = capfd.readouterr()
    assert_absent(out.out + out.err, secrets, "the process output")


def test_failing_nights_record_no_secret(env, postgres, s3, nas, tmp_path, monkeypatch, capfd):
    """A wrong password and a malformed backup key fail naming the server and the variable."""
    monkeypatch.setenv("T_WRONG_PASSWORD", WRONG_PASSWORD)
    malformed_key = "not-a-key-but-secret-Zx81"
    monkeypatch.setenv("T_MALFORMED_KEY", malformed_key)
    secrets = {
        "the wrong password": WRONG_PASSWORD,
        "the malformed key": malformed_key,
        "the PostgreSQL password": env["T_PG_PASSWORD"],
    }
    home = tmp_path / "home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        bad_password = night(instance, resources(postgres, s3, nas, "T_WRONG_PASSWORD"))
        assert not bad_password.success
        assert f"{postgres.host}:{postgres.port}" in errors_of(bad_password)
        bad_key = night(instance, resources(postgres, s3, nas, key_var="T_MALFORMED_KEY"))
        assert not bad_key.success
        assert "T_MALFORMED_KEY is not a backup key" in errors_of(bad_key)
        for result in (bad_password, bad_key):
            assert_absent(recorded(instance, result.run_id, home), secrets, "the run's records")
            assert_absent(errors_of(result), secrets, "the errors")
    out = capfd.readouterr()
    assert_absent(out.out + out.err, secrets, "the process output")
