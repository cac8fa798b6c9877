"""The platform's settings: one environment-variable prefix, validated once at load.

Everything the code location needs to know about where it runs comes from `PICLUSTER_*`
variables (plus the inventory file, read by `platform_assets.inventory`). `load_settings` reads
them all, checks each one, and raises `SettingsError` naming the variable and the expected form,
so a wrong deployment fails when the code location loads, not halfway through a run.

Secrets are never read here. For a secret we only check that its variable is set; the value
reaches a resource through `dg.EnvVar(name)`, which Dagster resolves at run time and never
shows in the UI, logs or metadata.
"""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

PREFIX = "PICLUSTER_"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROFILES = ("local", "cluster")
# Where the kubelet mounts a pod's ServiceAccount token (every pod, unless the pod opts out).
SERVICEACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# Who runs the schedules and sensors: the laptop until the hand-over, then the cluster's Dagster.
OWNERS = ("laptop", "cluster")


_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# The object store's buckets, by role, and the variable naming each (default: the role, the
# name the `object_store` release gives it).
BUCKET_SETTINGS = {
    "landing": "S3_LANDING_BUCKET",
    "warehouse": "S3_WAREHOUSE_BUCKET",
    "quarantine": "S3_QUARANTINE_BUCKET",
    "backups": "S3_BACKUPS_BUCKET",
}


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable and what it expects."""


@dataclass(frozen=True)
class S3Settings:
    endpoint: str  # host:port, no scheme
    secure: bool
    buckets: dict[str, str]  # role (a key's first segment) -> the bucket's name
    region: str
    access_key_var: str  # names of the variables holding the secrets, never their values
    secret_key_var: str
    # The `backups` bucket's own key pair (the release's `backups` identity); the same
    # variables as above when it has none.
    backups_access_key_var: str = ""
    backups_secret_key_var: str = ""

    def __post_init__(self):
        if not self.backups_access_key_var:
            object.__setattr__(self, "backups_access_key_var", self.access_key_var)
            object.__setattr__(self, "backups_secret_key_var", self.secret_key_var)


@dataclass(frozen=True)
class TrinoSettings:
    host: str
    port: int
    user: str
    catalog: str
    http_scheme: str
    # s3:// URI of the warehouse schema (where its managed tables live); "" means
    # s3://<warehouse bucket>/<schema>.db. Trino's file metastore needs its own catalog folder.
    schema_location: str = ""


@dataclass(frozen=True)
class PostgresSettings:
    host: str
    port: int
    database: str
    user: str
    password_var: str

    def sqlalchemy_url(self, password: str) -> str:
        """The URL for SQLAlchemy; built only inside a resource, from the resolved secret."""
        return (
            f"postgresql+psycopg2://{quote(self.user, safe='')}:{quote(password, safe='')}"
            f"@{self.host}:{self.port}/{quote(self.database, safe='')}"
        )


@dataclass(frozen=True)
class Settings:
    profile: str
    home: Path
    inventory_path: Path
    warehouse_schema: str
    # local profile
    object_store_root: Path
    duckdb_path: Path
    ledger_sqlite_path: Path
    # cluster profile (None on local)
    s3: S3Settings | None = None
    trino: TrinoSettings | None = None
    postgres: PostgresSettings | None = None
    kubeconfig_path: Path | None = None
    # In a pod with no PICLUSTER_KUBECONFIG: the pod's ServiceAccount authenticates (no file).
    kube_in_cluster: bool = False
    automation_owner: str = "laptop"

    @property
    def is_cluster(self) -> bool:
        return self.profile == "cluster"

    @property
    def kubeconfig_for_resource(self) -> str:
        """What KubernetesResource.kubeconfig_path gets: "" means the pod's ServiceAccount."""
        if self.kube_in_cluster:
            return ""
        return str(self.kubeconfig_path or (self.home / "kubeconfig"))


class _Reader:
    """Reads prefixed variables from one environment mapping and explains what is wrong."""

    def __init__(self, environ: Mapping[str, str]):
        self.environ = environ

    def raw(self, name: str) -> str | None:
        value = self.environ.get(PREFIX + name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def blank(self, name: str) -> bool:
        """Set, but to nothing or whitespace, which `raw` reads as unset: for a setting whose
        default would silently stand in for a value someone meant to give."""
        value = self.environ.get(PREFIX + name)
        return value is not None and value.strip() == ""

    def text(self, name: str, default: str | None = None, *, expected: str = "a value") -> str:
        value = self.raw(name)
        if value is None:
            if default is None:
                raise SettingsError(f"{PREFIX}{name} is not set; expected {expected}.")
            return default
        return value

    def matching(
        self, name: str, pattern: re.Pattern[str], *, expected: str, default: str | None = None
    ) -> str:
        """A value the whole of which `pattern` matches; `expected` says what one looks like,
        both when it is unset (and has no default) and when it does not match."""
        value = self.text(name, default, expected=expected)
        if not pattern.fullmatch(value):
            raise SettingsError(f"{PREFIX}{name}={value!r} is not valid; expected {expected}.")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(name, default)
        if value not in choices:
            raise SettingsError(
                f"{PREFIX}{name}={value!r} is not valid; expected one of: {', '.join(choices)}."
            )
        return value

    def port(self, name: str, default: int | None = None) -> int:
        value = self.raw(name)
        if value is None:
            if default is None:
                raise SettingsError(f"{PREFIX}{name} is not set; expected a TCP port (1-65535).")
            return default
        if not value.isdigit() or not 1 <= int(value) <= 65535:
            raise SettingsError(
                f"{PREFIX}{name}={value!r} is not valid; expected a TCP port (1-65535)."
            )
        return int(value)

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{PREFIX}{name}={value!r} is not valid; expected true or false.")

    def identifier(self, name: str, default: str) -> str:
        value = self.text(name, default)
        if not value.replace("_", "a").isalnum() or not value[0].isalpha() or not value.islower():
            raise SettingsError(
                f"{PREFIX}{name}={value!r} is not valid; expected a lower-case SQL identifier "
                "(letters, digits, underscores, starting with a letter)."
            )
        return value

    def host_port(self, name: str) -> str:
        value = self.text(name, expected="host:port, e.g. 10.0.0.5:8333")
        host, sep, port = value.rpartition(":")
        if "://" in value or not sep or not host or not port.isdigit():
            raise SettingsError(
                f"{PREFIX}{name}={value!r} is not valid; expected host:port without a scheme, "
                "e.g. seaweedfs.storage.svc:8333."
            )
        return value

    def bucket(self, name: str, default: str) -> str:
        """An S3 bucket name (3-63 of a-z 0-9 . -, starting and ending with a letter or digit)."""
        value = self.text(name, default)
        if not _BUCKET_NAME.fullmatch(value) or ".." in value:
            raise SettingsError(
                f"{PREFIX}{name}={value!r} is not valid; expected an S3 bucket name (3-63 "
                "lower-case letters, digits, '.' or '-', starting and ending with a letter or "
                "digit)."
            )
        return value

    def s3_uri(self, name: str) -> str:
        """An optional s3://bucket/path URI; "" when unset."""
        value = self.raw(name)
        if value is None:
            return ""
        bucket = value.removeprefix("s3://").split("/", 1)[0]
        if not value.startswith("s3://") or not bucket or "'" in value:
            raise SettingsError(
                f"{PREFIX}{name}={value!r} is not valid; expected an s3://bucket/path URI."
            )
        return value.rstrip("/")

    def secret_var(self, name: str) -> str:
        """Checks a secret is set without keeping its value; returns the variable's name."""
        if self.raw(name) is None:
            raise SettingsError(
                f"{PREFIX}{name} is not set; expected the secret in that variable "
                "(it is read only at run time and never logged)."
            )
        return PREFIX + name

    def path(self, name: str, default: Path) -> Path:
        value = self.raw(name)
        if value is None:
            return default
        path = Path(value).expanduser()
        return path if path.is_absolute() else (PROJECT_ROOT / path)


def running_in_pod(environ: Mapping[str, str] | None = None) -> bool:
    """True in a Kubernetes pod: the kubelet sets KUBERNETES_SERVICE_HOST in every container."""
    environ = os.environ if environ is None else environ
    return bool(environ.get("KUBERNETES_SERVICE_HOST", "").strip())


def automation_owner(environ: Mapping[str, str] | None = None) -> str:
    """`PICLUSTER_SCHEDULES_OWNER`: which Dagster runs the schedules and sensors."""
    return _Reader(os.environ if environ is None else environ).choice(
        "SCHEDULES_OWNER", OWNERS, "laptop"
    )


def this_deployment(environ: Mapping[str, str] | None = None) -> str:
    """`cluster` for the Dagster running in the cluster's pods, `laptop` for any other."""
    return "cluster" if running_in_pod(environ) else "laptop"


def owns_automation(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this deployment's schedules and sensors run by default (one owner for each)."""
    return automation_owner(environ) == this_deployment(environ)


def _kube_in_cluster(read: _Reader) -> bool:
    if read.raw("KUBECONFIG") is not None or not running_in_pod(read.environ):
        return False
    if not (SERVICEACCOUNT_DIR / "token").is_file():
        raise SettingsError(
            f"PICLUSTER_KUBECONFIG is not set and this pod has no ServiceAccount token at "
            f"{SERVICEACCOUNT_DIR}/token; set automountServiceAccountToken (the dagster "
            "release does) or point PICLUSTER_KUBECONFIG at a kubeconfig file."
        )
    return True


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Reads and validates every `PICLUSTER_*` setting for the active profile."""
    read = _Reader(os.environ if environ is None else environ)
    profile = read.choice("PROFILE", PROFILES, "local")
    owner = automation_owner(read.environ)
    home = read.path("HOME", PROJECT_ROOT / ".picluster")
    default_inventory = "inventory.yaml" if profile == "cluster" else "inventory.example.yaml"
    common = dict(
        profile=profile,
        home=home,
        inventory_path=read.path("INVENTORY", PROJECT_ROOT / default_inventory),
        warehouse_schema=read.identifier("WAREHOUSE_SCHEMA", "sensors"),
        object_store_root=read.path("OBJECT_STORE_ROOT", home / "object-store"),
        duckdb_path=read.path("DUCKDB_PATH", home / "warehouse.duckdb"),
        ledger_sqlite_path=read.path("LEDGER_SQLITE_PATH", home / "ledger.sqlite"),
        automation_owner=owner,
    )
    if profile == "local":
        return Settings(**common)

    if read.raw("S3_BUCKET") is not None:
        # The one `lake` bucket is gone: a deployment still setting it would write elsewhere.
        raise SettingsError(
            f"{PREFIX}S3_BUCKET is no longer read: the platform uses the object_store "
            "release's buckets, named by "
            + ", ".join(PREFIX + v for v in BUCKET_SETTINGS.values())
            + " (defaults: landing, warehouse, quarantine, backups); unset it."
        )
    buckets = {role: read.bucket(variable, role) for role, variable in BUCKET_SETTINGS.items()}
    if len(set(buckets.values())) != len(buckets):
        raise SettingsError(
            "the object store's buckets must be distinct: "
            + ", ".join(f"{PREFIX}{BUCKET_SETTINGS[r]}={n}" for r, n in buckets.items())
        )
    own_backups_keys = read.raw("S3_BACKUPS_ACCESS_KEY") is not None
    s3 = S3Settings(
        endpoint=read.host_port("S3_ENDPOINT"),
        secure=read.flag("S3_SECURE", True),
        buckets=buckets,
        region=read.text("S3_REGION", "us-east-1"),
        access_key_var=read.secret_var("S3_ACCESS_KEY"),
        secret_key_var=read.secret_var("S3_SECRET_KEY"),
        backups_access_key_var=read.secret_var("S3_BACKUPS_ACCESS_KEY") if own_backups_keys else "",
        backups_secret_key_var=read.secret_var("S3_BACKUPS_SECRET_KEY") if own_backups_keys else "",
    )
    trino = TrinoSettings(
        host=read.text("TRINO_HOST", expected="the Trino coordinator's host name"),
        port=read.port("TRINO_PORT", 8080),
        user=read.text("TRINO_USER", "piclusterops"),
        catalog=read.identifier("TRINO_CATALOG", "hive"),
        http_scheme=read.choice("TRINO_HTTP_SCHEME", ("http", "https"), "http"),
        schema_location=read.s3_uri("WAREHOUSE_SCHEMA_LOCATION"),
    )
    postgres = PostgresSettings(
        host=read.text("PG_HOST", expected="the PostgreSQL host name"),
        port=read.port("PG_PORT", 5432),
        database=read.text("PG_DATABASE", "piclusterops"),
        user=read.text("PG_USER", "piclusterops"),
        password_var=read.secret_var("PG_PASSWORD"),
    )
    return Settings(
        **common,
        s3=s3,
        trino=trino,
        postgres=postgres,
        kubeconfig_path=read.path("KUBECONFIG", home / "kubeconfig"),
        kube_in_cluster=_kube_in_cluster(read),
    )
