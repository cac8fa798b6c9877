"""The backups' fixtures (the backup key in the environment, the NAS's SeaweedFS) for the
recovery tests."""

from tests.backups.conftest import backup_key_env  # noqa: F401
