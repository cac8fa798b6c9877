"""NiFi's HTTPS from the LAN CA: the rendered StatefulSet against the apache/nifi 2.0.0 image's
own start scripts, and the keystore cert-manager would write, read by Java's keytool.

The scripts were read in the NiFi 2.0.0 source release (Maven Central,
org.apache.nifi:nifi:2.0.0, nifi-2.0.0-source-release.zip; the tag rel/nifi-2.0.0 of
apache/nifi): nifi-docker/dockerhub/sh/start.sh, secure.sh and common.sh, and the Dockerfile
beside them (bellsoft/liberica-openjdk-debian:21: NiFi runs on Java 21). NiFi itself does not
run here (no container engine, and its 1.5 GB distribution on a shared 2-core machine): that it
starts with these properties is the Pi's to show. The keystore is the real thing: encoded by
go-pkcs12 at cert-manager's pinned version the way cert-manager's controller encodes it
(tests/harness/pkcs12_dist.py), for a certificate issued from the release's own Certificate.
"""

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from platform_assets.inventory import parse_inventory
from platform_assets.releases import lan_tls, nifi
from platform_assets.releases.secrets import _random_value
from platform_assets.releases.spec import helmcharts
from tests.harness import pkcs12_dist
from tests.harness.lan_ca import new_ca
from tests.releases.test_rendering import own_manifests

ROOT = Path(__file__).resolve().parents[2]
INV = parse_inventory(
    {**yaml.safe_load((ROOT / "inventory.example.yaml").read_text()), "nifi": True}, "inv.yaml"
)
RELEASE = nifi.nifi(INV)
(CHART,) = helmcharts(RELEASE)
MANIFESTS = {m["kind"]: m for m in own_manifests(CHART)}
POD = MANIFESTS["StatefulSet"]["spec"]["template"]["spec"]
(CONTAINER,) = POD["containers"]
ENV = {e["name"]: e for e in CONTAINER["env"]}
CERT = MANIFESTS["Certificate"]

# Every variable the StatefulSet sets, and where the image reads it: (script, what it writes).
# start.sh and secure.sh of apache/nifi rel/nifi-2.0.0 (nifi-docker/dockerhub/sh/).
IMAGE_VARIABLES = {
    "NIFI_WEB_HTTPS_PORT": ("start.sh", "nifi.web.https.port"),
    "NIFI_WEB_HTTPS_HOST": ("start.sh", "nifi.web.https.host"),
    "NIFI_WEB_PROXY_HOST": ("start.sh", "nifi.web.proxy.host"),
    "NIFI_JVM_HEAP_INIT": ("start.sh", "bootstrap.conf java.arg.2 (-Xms)"),
    "NIFI_JVM_HEAP_MAX": ("start.sh", "bootstrap.conf java.arg.3 (-Xmx)"),
    "SINGLE_USER_CREDENTIALS_USERNAME": ("start.sh", "nifi.sh set-single-user-credentials"),
    "SINGLE_USER_CREDENTIALS_PASSWORD": ("start.sh", "nifi.sh set-single-user-credentials"),
    "NIFI_SENSITIVE_PROPS_KEY": ("start.sh", "nifi.sensitive.props.key"),
    "AUTH": ("start.sh", "sources secure.sh for tls, ldap or oidc"),
    "KEYSTORE_PATH": ("secure.sh", "nifi.security.keystore (must exist)"),
    "KEYSTORE_TYPE": ("secure.sh", "nifi.security.keystoreType"),
    "KEYSTORE_PASSWORD": ("secure.sh", "nifi.security.keystorePasswd and keyPasswd"),
    "TRUSTSTORE_PATH": ("secure.sh", "nifi.security.truststore (must exist)"),
    "TRUSTSTORE_TYPE": ("secure.sh", "nifi.security.truststoreType"),
    "TRUSTSTORE_PASSWORD": ("secure.sh", "nifi.security.truststorePasswd"),
    "NIFI_SECURITY_USER_AUTHORIZER": ("secure.sh", "nifi.security.user.authorizer"),
    "NIFI_SECURITY_USER_LOGIN_IDENTITY_PROVIDER": (
        "secure.sh",
        "nifi.security.user.login.identity.provider",
    ),
}


def _mounted_key(path: str) -> str:
    """The key of the Certificate's Secret a path in the container is, through the tls volume."""
    (mount,) = [m for m in CONTAINER["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    (volume,) = [v for v in POD["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == CERT["spec"]["secretName"]
    name = path.removeprefix(mount["mountPath"] + "/")
    (item,) = [i for i in volume["secret"]["items"] if i["path"] == name]
    return item["key"]


def test_every_variable_nifi_is_given_is_one_the_images_scripts_read():
    assert sorted(ENV) == sorted(IMAGE_VARIABLES)


def test_auth_tls_is_what_makes_start_sh_apply_the_keystore_and_the_login_stays_single_user():
    # start.sh: `case ${AUTH} in tls) . secure.sh`; ldap and oidc would also rewrite the login
    # providers. Without it KEYSTORE_* are read by nothing, and nifi.properties keeps the
    # image's ./conf/keystore.p12 with no password: the self-signed certificate NiFi served
    # before.
    assert ENV["AUTH"]["value"] == "tls"
    # secure.sh sets these two from the variables, defaulting to managed-authorizer and none:
    # NiFi's own defaults (nifi-resources/pom.xml @rel/nifi-2.0.0) keep the single-user login.
    assert ENV["NIFI_SECURITY_USER_AUTHORIZER"]["value"] == "single-user-authorizer"
    assert ENV["NIFI_SECURITY_USER_LOGIN_IDENTITY_PROVIDER"]["value"] == "single-user-provider"


def test_the_stores_are_the_files_cert_manager_writes_of_the_type_it_writes():
    pkcs12 = CERT["spec"]["keystores"]["pkcs12"]
    assert pkcs12["create"] is True
    assert _mounted_key(ENV["KEYSTORE_PATH"]["value"]) == "keystore.p12" == lan_tls.KEYSTORE_KEY
    assert _mounted_key(ENV["TRUSTSTORE_PATH"]["value"]) == "truststore.p12"
    assert ENV["KEYSTORE_TYPE"]["value"] == ENV["TRUSTSTORE_TYPE"]["value"] == "PKCS12"
    # The mount holds the stores only, never the PEM key beside them.
    (volume,) = [v for v in POD["volumes"] if v["name"] == "tls"]
    assert {i["key"] for i in volume["secret"]["items"]} == {"keystore.p12", "truststore.p12"}


def test_the_password_is_the_generated_secret_cert_manager_encrypts_with():
    ref = CERT["spec"]["keystores"]["pkcs12"]["passwordSecretRef"]
    for name in ("KEYSTORE_PASSWORD", "TRUSTSTORE_PASSWORD"):
        assert "value" not in ENV[name]
        assert ENV[name]["valueFrom"]["secretKeyRef"] == ref
    (generated,) = [s for s in RELEASE.secrets if s.name == ref["name"]]
    assert generated.namespace == CERT["metadata"]["namespace"] == "nifi"
    assert ref["key"] in generated.keys
    assert not generated.derived_from and generated.copied_from is None
    # cert-manager's literal `password` field stays unused: the password is no value here.
    assert "password" not in CERT["spec"]["keystores"]["pkcs12"]


def test_a_generated_password_survives_secure_sh_writing_it_into_nifi_properties():
    # common.sh's prop_replace runs `sed -i -e "s|^$1=.*$|$1=$2|"`: a `|`, `&`, `\` or a
    # newline in the password would break or change the line it writes.
    samples = {_random_value(nifi.KEYSTORE_PASSWORD_KEY) for _ in range(200)}
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{20,}", p) for p in samples)


def test_the_certificate_names_the_service_the_gateway_dials():
    assert "nifi.nifi.svc" in CERT["spec"]["dnsNames"]
    service = MANIFESTS["Service"]
    assert service["spec"]["ports"] == [{"name": "https", "port": nifi.PORT}]
    assert ENV["NIFI_WEB_HTTPS_PORT"]["value"] == str(nifi.PORT)


# --- the keystore, for real --------------------------------------------------------------------

# NiFi 2.0.0 runs on Java 21; these two bracket it.
JDKS = [Path("/usr/lib/jvm/java-17-openjdk-amd64"), Path("/usr/lib/jvm/temurin-25-jdk-amd64")]
PASSWORD = "Zm9vYmFyLXRlc3Qta2V5c3RvcmUtcGFzc3dvcmQ"  # noqa: S105 (a test's own password)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """The Certificate's Secret as cert-manager would write it: PEM files from a test CA, then
    keystore.p12 and truststore.p12 encoded with the spec's profile."""
    secret = new_ca().issue(CERT, tmp_path_factory.mktemp("nifi-tls"))
    pkcs12_dist.encode(CERT["spec"]["keystores"]["pkcs12"]["profile"], secret, PASSWORD)
    return secret


def _keytool(jdk: Path, *args: str) -> subprocess.CompletedProcess:
    if not (jdk / "bin" / "keytool").is_file():
        pytest.skip(f"no JDK at {jdk}")
    return subprocess.run(
        [str(jdk / "bin" / "keytool"), *args], capture_output=True, text=True, timeout=60
    )


def _entries(listing: str) -> list[str]:
    return re.findall(r"^Entry type: (\w+)", listing, flags=re.MULTILINE)


@pytest.mark.service
@pytest.mark.parametrize("jdk", JDKS, ids=lambda p: p.name)
def test_java_reads_the_keystore_with_the_type_and_password_nifi_is_given(stores, jdk):
    keystore = stores / Path(ENV["KEYSTORE_PATH"]["value"]).name
    store_type = ENV["KEYSTORE_TYPE"]["value"]
    listed = _keytool(
        jdk, "-list", "-v", "-keystore", str(keystore), "-storetype", store_type,
        "-storepass", PASSWORD,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert _entries(listed.stdout) == ["PrivateKeyEntry"]
    assert "DNSName: nifi.nifi.svc" in listed.stdout
    # secure.sh gives the key the keystore's password (KEY_PASSWORD unset): a request signed
    # with the key proves that password opens the key too.
    (alias,) = re.findall(r"^Alias name: (.+)$", listed.stdout, flags=re.MULTILINE)
    signed = _keytool(
        jdk, "-certreq", "-alias", alias, "-keystore", str(keystore), "-storetype", store_type,
        "-storepass", PASSWORD, "-keypass", PASSWORD,
    )  # fmt: skip
    assert signed.returncode == 0, signed.stdout + signed.stderr
    assert "BEGIN NEW CERTIFICATE REQUEST" in signed.stdout


@pytest.mark.service
@pytest.mark.parametrize("jdk", JDKS, ids=lambda p: p.name)
def test_java_reads_the_truststore_as_the_lan_ca_alone(stores, jdk):
    truststore = stores / Path(ENV["TRUSTSTORE_PATH"]["value"]).name
    listed = _keytool(
        jdk, "-list", "-v", "-keystore", str(truststore),
        "-storetype", ENV["TRUSTSTORE_TYPE"]["value"], "-storepass", PASSWORD,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stdout + listed.stderr
    # A trusted entry, which Java keeps only with the trust attribute go-pkcs12 writes.
    assert _entries(listed.stdout) == ["trustedCertEntry"]
    assert "CN=PiClusterOps test LAN CA" in listed.stdout


@pytest.mark.service
@pytest.mark.parametrize("jdk", JDKS, ids=lambda p: p.name)
def test_another_password_does_not_open_the_keystore(stores, jdk):
    keystore = str(stores / "keystore.p12")
    wrong = _keytool(
        jdk, "-list", "-keystore", keystore, "-storetype", "PKCS12", "-storepass", "not-it"
    )
    assert wrong.returncode != 0
    assert "password was incorrect" in wrong.stdout + wrong.stderr


# --- the conf directory on the volume ----------------------------------------------------------


def test_the_conf_volume_is_seeded_by_the_image_itself_before_nifi_starts():
    (seed,) = POD["initContainers"]
    assert seed["image"] == CONTAINER["image"]
    (into,) = seed["volumeMounts"]
    (conf,) = [m for m in CONTAINER["volumeMounts"] if m["mountPath"] == f"{nifi.NIFI_HOME}/conf"]
    assert (into["name"], into["subPath"]) == (conf["name"], conf["subPath"]) == ("data", "conf")
    assert seed["command"] == ["/bin/sh", "-c", nifi.SEED_CONF]


def test_the_seed_copies_the_images_conf_onto_an_empty_volume_and_keeps_one_already_there(
    tmp_path,
):
    image = tmp_path / "image-home"
    (image / "conf").mkdir(parents=True)
    (image / "conf" / "nifi.properties").write_text("nifi.web.https.port=8443\n")
    (image / "conf" / "bootstrap.conf").write_text("java.arg.2=-Xms1g\n")
    volume = tmp_path / "volume-conf"
    volume.mkdir()
    # The command as rendered, its two directories moved to the test's.
    script = nifi.SEED_CONF.replace(nifi.SEED_DIR, str(volume)).replace(nifi.NIFI_HOME, str(image))
    subprocess.run(["/bin/sh", "-c", script], check=True, timeout=30)
    assert sorted(p.name for p in volume.iterdir()) == ["bootstrap.conf", "nifi.properties"]
    # NiFi has run since: its conf (and the flow beside it) is kept on every later start.
    (volume / "nifi.properties").write_text("nifi.web.https.port=8443\nedited=by-nifi\n")
    (volume / "flow.json.gz").write_bytes(b"flow")
    (image / "conf" / "bootstrap.conf").write_text("java.arg.2=-Xms2g\n")
    subprocess.run(["/bin/sh", "-c", script], check=True, timeout=30)
    assert "edited=by-nifi" in (volume / "nifi.properties").read_text()
    assert (volume / "bootstrap.conf").read_text() == "java.arg.2=-Xms1g\n"
    assert (volume / "flow.json.gz").read_bytes() == b"flow"
