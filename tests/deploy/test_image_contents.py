"""The image holds what the code location needs on the cluster.

The Dockerfile's build stage is repeated in a temporary folder (tests/deploy/image.py: the same
uv, `uv sync` flags and copied files), then the code location is loaded from that copy alone,
on the cluster profile, with the settings, inventory and SSH files where the dagster release
puts them: env from its ConfigMap and a settings Secret, the inventory ConfigMap and the SSH
Secret at their mount paths under /run (a private tmpfs in a mount namespace, as a pod has), a
ServiceAccount token where the kubelet mounts one. The SSH files and the token are test-made
placeholders: loading reads their paths, a run reads their contents.
"""

import json
import shlex
import subprocess
import textwrap

import pytest

from platform_assets.inventory import load_inventory
from platform_assets.releases import catalogue
from platform_assets.releases import dagster as release
from tests.deploy.image import DOCKERFILE, ROOT, NotReproducible, build, env_pairs

pytestmark = [pytest.mark.slow]

# What a person puts in Secret piclusterops-settings (docs/dagster-on-cluster.md), test values.
SETTINGS_SECRET = {
    "PICLUSTER_S3_ENDPOINT": "seaweedfs.storage.svc:8333",
    "PICLUSTER_S3_SECURE": "false",
    "PICLUSTER_TRINO_HOST": "trino.query.svc",
    "PICLUSTER_PG_HOST": "pg-main-rw.databases.svc",
    "PICLUSTER_PG_PASSWORD": "test-password",
    # The nightly backups' mirror off the cluster and the key that seals what goes there.
    "PICLUSTER_BACKUP_MIRROR_ENDPOINT": "nas.lan:8333",
    "PICLUSTER_BACKUP_MIRROR_ACCESS_KEY": "test-mirror-access-key",
    "PICLUSTER_BACKUP_MIRROR_SECRET_KEY": "test-mirror-secret-key",
    "PICLUSTER_BACKUP_KEY": "test-backup-key",
}
# What the release's derived Secrets add (release.S3_KEY_SECRETS), test values: the
# object_store resource's two key pairs under the settings' names.
DERIVED_S3_KEYS = {
    f"{prefix}_{part}_KEY": f"test-{name}-{part.lower()}"
    for name, (_, prefix) in release.S3_KEY_SECRETS.items()
    for part in ("ACCESS", "SECRET")
}

PROBE = textwrap.dedent(
    """
    import json, os
    import dagster as dg
    import definitions

    defs = definitions.defs
    dg.Definitions.validate_loadable(defs)
    res = defs.resources
    files = [res["ssh"].private_key_path, res["ssh"].known_hosts_path]
    print(json.dumps({
        "definitions": definitions.__file__,
        "inventory": str(res["inventory_file"].path),
        "kubeconfig": res["kubernetes"].kubeconfig_path,
        "readable": {f: os.access(f, os.R_OK) for f in files},
        "sensors": {s.name: s.default_status.value for s in defs.sensors},
        "assets": len(list(defs.resolve_asset_graph().get_all_asset_keys())),
    }))
    """
)


def _mounts_script(workdir, inventory_text: str, probe: str) -> str:
    """Shell run in a new mount namespace: a private /run, the release's mounts in it."""
    ssh = release.SSH_DIR
    token_dir = "/run/secrets/kubernetes.io/serviceaccount"
    return "\n".join(
        [
            "set -e",
            "mount -t tmpfs -o mode=0755 tmpfs /run",
            f"mkdir -p {release.INVENTORY_DIR} {ssh} {token_dir}",
            f"cat > {release.INVENTORY_PATH} <<'INVENTORY'\n{inventory_text}INVENTORY",
            f"echo 'test-made placeholder key' > {ssh}/{release.SSH_KEY_FILE}",
            f"echo 'test-made placeholder known_hosts' > {ssh}/{release.KNOWN_HOSTS_FILE}",
            f"chmod {release.SECRET_FILE_MODE:o} {ssh}/*",
            f"echo test-made-token > {token_dir}/token",
            f"cd {workdir}",
            f"exec .venv/bin/python -c {shlex.quote(probe)}",
        ]
    )


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    root = tmp_path_factory.mktemp("image")
    workdir, final = build(DOCKERFILE.read_text(), root)
    return workdir, final


def _load(workdir, final):
    inv = load_inventory(ROOT / "inventory.example.yaml")
    dagster = catalogue.dagster(inv)
    configmaps = {m["metadata"]["name"]: m["data"] for m in dagster.objects}
    env = {}
    for word, args in final.steps:
        if word == "ENV":
            env.update(env_pairs(args))
    env["PATH"] = f"{workdir}/.venv/bin:/usr/bin:/bin"
    env.update(configmaps[release.ENV_CONFIGMAP])
    env.update(SETTINGS_SECRET)
    env.update(DERIVED_S3_KEYS)  # after the settings, as in the pods' envFrom
    env["KUBERNETES_SERVICE_HOST"] = "10.43.0.1"
    env["HOME"] = str(workdir)
    inventory_text = configmaps[release.INVENTORY_CONFIGMAP][release.INVENTORY_FILE]
    return subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
            _mounts_script(workdir, inventory_text, PROBE),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_code_location_loads_from_the_image_alone_on_the_cluster_profile(image):
    workdir, final = image
    done = _load(workdir, final)
    assert done.returncode == 0, done.stderr[-4000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    # Loaded from the image's copy, not from this checkout.
    assert seen["definitions"] == str(workdir / "definitions.py")
    assert seen["inventory"] == release.INVENTORY_PATH
    # In a pod: the ServiceAccount, no kubeconfig file.
    assert seen["kubeconfig"] == ""
    assert seen["readable"] == {
        f"{release.SSH_DIR}/{release.SSH_KEY_FILE}": True,
        f"{release.SSH_DIR}/{release.KNOWN_HOSTS_FILE}": True,
    }
    # The cluster's Dagster owns the sensors (PICLUSTER_SCHEDULES_OWNER=cluster in a pod).
    assert seen["sensors"] == {"landing_files": "RUNNING", "asset_check_metrics": "RUNNING"}
    assert seen["assets"] > 20


def test_the_final_stage_runs_as_the_user_the_release_expects(image):
    _, final = image
    users = [args for word, args in final.steps if word == "USER"]
    assert users == [[str(release.IMAGE_USER)]]
    copies = [args for word, args in final.steps if word == "COPY"]
    assert copies == [
        [
            "--from=build",
            f"--chown={release.IMAGE_USER}:{release.IMAGE_USER}",
            "/opt/piclusterops",
            "/opt/piclusterops",
        ]
    ]


def test_the_charts_webserver_command_finds_the_images_entry(image):
    # The chart runs `/bin/bash -c "dagster-webserver ..."`: by name, on the image's PATH.
    workdir, final = image
    env = {}
    for word, args in final.steps:
        if word == "ENV":
            env.update(env_pairs(args))
    path = env["PATH"].replace("/opt/piclusterops", str(workdir)).replace("$PATH", "/usr/bin:/bin")
    done = subprocess.run(
        ["/bin/bash", "-c", "command -v dagster-webserver; dagster-webserver --version"],
        env={"PATH": path, "HOME": str(workdir)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found, answer = done.stdout.strip().splitlines()
    assert found == str(workdir / "bin" / "dagster-webserver")
    assert answer == f"dagster-webserver, version {release.DAGSTER_VERSION}"


def test_a_file_the_image_lacks_fails_the_load(tmp_path):
    # The same build with `COPY sensors` dropped: the code location no longer loads.
    text = DOCKERFILE.read_text().replace("COPY sensors ./sensors\n", "")
    assert text != DOCKERFILE.read_text()
    workdir, final = build(text, tmp_path)
    done = _load(workdir, final)
    assert done.returncode != 0
    assert "No module named 'sensors'" in done.stderr


def test_a_build_step_the_copy_cannot_repeat_is_refused(tmp_path):
    last_sync = "RUN uv sync --locked --no-dev --compile-bytecode\n"
    text = DOCKERFILE.read_text().replace(last_sync, last_sync + "RUN make assets\n")
    assert text != DOCKERFILE.read_text()
    with pytest.raises(NotReproducible, match="make assets"):
        build(text, tmp_path)
