"""A real Kubernetes control plane for one test session (or `make fake-cluster`), from the
binaries `tests.harness.kube_dist` built: etcd -> kube-apiserver -> kube-controller-manager ->
kube-scheduler -> KWOK -> K3s's helm-controller, each on free ports of 127.0.0.1 only.

- the API server: TLS with a CA of our own (`kube_pki`), RBAC and Node authorizers, a service
  CIDR, service-account signing keys; clients authenticate with certificates;
- the controller-manager runs every default controller (service-account tokens, disruption,
  node lifecycle, garbage collection, Deployments/StatefulSets/DaemonSets/Jobs), each with its
  own service account, as in K3s;
- KWOK stands in for the kubelets of the nodes annotated `kwok.x-k8s.io/node=fake` only (the
  fake Pis register theirs, see tests/fake_pi/kubelet.py): their status, heartbeats and the
  pods bound to them. No container ever runs;
- the helm-controller registers the HelmChart CRDs and turns HelmCharts into helm-install Jobs.

etcd speaks plain HTTP on loopback to the API server alone (nothing else can reach 127.0.0.1 of
this machine's other users' namespaces: the tests are the only clients); everything else is TLS.
"""

import base64
import http.client
import os
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.harness import kube_dist
from tests.harness.kube_pki import CertPair, Pki
from tests.harness.kwok_stages import KWOK_NODE_ANNOTATION, KWOK_STAGES
from tests.harness.procs import LOOPBACK, ServiceNotReady, ServiceProcess, free_port

READY_TIMEOUT = 90.0
SERVICE_CIDR = "10.43.0.0/16"  # K3s's default service CIDR
POD_CIDR = "10.42.0.0/16"  # K3s's default cluster CIDR: where KWOK takes pod IPs from
# The fake Pis' addresses: the fake server forwards its port 6443 to this API server, so the
# serving certificate must name them (as K3s's `tls-san` names the node address).
FAKE_PI_ADDRESSES = ("127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14")


class KubeBinariesMissing(RuntimeError):
    """The control plane's binaries were never built on this machine."""


def binaries() -> Path:
    directory = kube_dist.bin_dir()
    if not kube_dist.is_complete(directory):
        raise KubeBinariesMissing(
            f"the test control plane (Kubernetes {kube_dist.KUBERNETES_VERSION}, etcd, KWOK, "
            f"helm-controller) is not built in {directory}: run `scripts/bootstrap.sh test` "
            "once (it builds them from the Go module proxy, about 20 minutes cold)"
        )
    return directory


def kubeconfig_text(server: str, ca: Path, client: CertPair, user: str) -> str:
    """A self-contained kubeconfig (data inlined), so it can be copied anywhere, e.g. into the
    fake server's /etc/rancher/k3s/k3s.yaml."""

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "default",
                "cluster": {"server": server, "certificate-authority-data": b64(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(client.cert),
                    "client-key-data": b64(client.key),
                },
            }
        ],
        "contexts": [{"name": "default", "context": {"cluster": "default", "user": user}}],
        "current-context": "default",
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)


@dataclass
class KubeControlPlane:
    """What the tests get: the API server's URL, an admin kubeconfig, a way to mint others."""

    workdir: Path
    port: int
    pki: Pki = field(repr=False)
    processes: list[ServiceProcess] = field(repr=False)
    # Seconds from its own start until each component answered its readiness probe.
    component_seconds: dict[str, float] = field(default_factory=dict)
    # From etcd's start until the last component was ready (what ServiceRegistry reports).
    ready_seconds: float | None = None
    # etcd's client URL (plain HTTP on loopback): the fake server's k3s takes its etcd
    # snapshots from it (tests/fake_pi/standin.py).
    etcd_url: str = ""

    name = "Kubernetes control plane"

    @property
    def server(self) -> str:
        return f"https://{LOOPBACK}:{self.port}"

    @property
    def ca_cert(self) -> Path:
        return self.pki.ca_cert

    @property
    def admin_kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    def kubeconfig_for(self, user: str, groups: Iterable[str] = (), server: str = "") -> Path:
        """A kubeconfig for `user` in `groups` (a client certificate this CA signed)."""
        stem = "user-" + user.replace(":", "_").replace("/", "_")
        pair = self.pki.client(stem, user, tuple(groups))
        path = self.workdir / f"{stem}.kubeconfig"
        path.write_text(kubeconfig_text(server or self.server, self.ca_cert, pair, user))
        path.chmod(0o600)
        return path

    def resource(self, **overrides):
        """A `KubernetesResource` authenticated as the cluster admin."""
        from resources.kubernetes import KubernetesResource

        return KubernetesResource(kubeconfig_path=str(self.admin_kubeconfig), **overrides)

    def pids(self) -> list[int]:
        return [p.proc.pid for p in self.processes if p.proc is not None]

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()


def _get(conn: http.client.HTTPConnection, path: str) -> str:
    """GET `path` on `conn` (closed after), the body when the answer is 200."""
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read().decode(errors="replace")
    finally:
        conn.close()
    if response.status != 200:
        raise RuntimeError(f"GET {path}: {response.status} {body[:200]}")
    return body


def _tls_get(port: int, path: str, pki: Pki, client: CertPair, timeout: float = 2.0) -> str:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.load_cert_chain(str(client.cert), str(client.key))
    return _get(http.client.HTTPSConnection(LOOPBACK, port, context=context, timeout=timeout), path)


def _insecure_get(port: int, path: str, timeout: float = 2.0) -> str:
    """The components' own health endpoints serve a self-signed certificate of their own."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return _get(http.client.HTTPSConnection(LOOPBACK, port, context=context, timeout=timeout), path)


def _http_get(port: int, path: str, timeout: float = 2.0) -> str:
    return _get(http.client.HTTPConnection(LOOPBACK, port, timeout=timeout), path)


def _component_kubeconfig(workdir: Path, pki: Pki, port: int, stem: str, user: str, *groups):
    pair = pki.client(stem, user, groups)
    path = workdir / f"{stem}.kubeconfig"
    path.write_text(kubeconfig_text(f"https://{LOOPBACK}:{port}", pki.ca_cert, pair, user))
    path.chmod(0o600)
    return path


def start_control_plane(
    workdir: Path,
    log_dir: Path,
    *,
    extra_sans: tuple[str, ...] = FAKE_PI_ADDRESSES,
    die_with_parent: bool = True,
    storage_only: bool = False,
) -> tuple[KubeControlPlane, KubeControlPlane]:
    """Start every component in order, each ready-waited before the next (only etcd with
    `storage_only`: the benchmark's baseline). Returns the control plane twice (as the service
    and as the thing ServiceRegistry stops), like the other services' starters."""
    bin_dir = binaries()
    workdir.mkdir(parents=True, exist_ok=True)
    pki = Pki(workdir / "pki")
    api_port = free_port()
    plane = KubeControlPlane(workdir, api_port, pki, [])
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),  # nothing reads ~/.kube of whoever runs the tests
    }

    def start(name: str, argv: list[str], probe, what: str = "ready") -> None:
        proc = ServiceProcess(
            name,
            [str(bin_dir / argv[0]), *argv[1:]],
            log_dir / f"{name}.log",
            env=env,
            cwd=workdir,
            stop_grace=5.0,
            die_with_parent=die_with_parent,
        ).start()
        plane.processes.append(proc)
        try:
            plane.component_seconds[name] = proc.wait_ready(probe, READY_TIMEOUT, what)
        except ServiceNotReady:
            plane.stop()
            raise

    try:
        # etcd: the API server's storage, nowhere else to be reached.
        etcd_client, etcd_peer = free_port(), free_port()
        etcd_dir = workdir / "etcd"
        start(
            "etcd",
            [
                "etcd",
                "--name=piclusterops-test",
                f"--data-dir={etcd_dir}",
                f"--listen-client-urls=http://{LOOPBACK}:{etcd_client}",
                f"--advertise-client-urls=http://{LOOPBACK}:{etcd_client}",
                f"--listen-peer-urls=http://{LOOPBACK}:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://{LOOPBACK}:{etcd_peer}",
                f"--initial-cluster=piclusterops-test=http://{LOOPBACK}:{etcd_peer}",
                "--unsafe-no-fsync",  # its data is thrown away with the session
                "--log-level=warn",
            ],
            lambda: '"health":"true"' in _http_get(etcd_client, "/health"),
            "healthy",
        )
        plane.etcd_url = f"http://{LOOPBACK}:{etcd_client}"
        if storage_only:
            plane.ready_seconds = plane.component_seconds["etcd"]
            return plane, plane

        sa = pki.service_account_keys()
        serving = pki.server(
            "apiserver",
            ips=(LOOPBACK, "10.43.0.1", *extra_sans),
            dns=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
        )
        kubelet_client = pki.client(
            "apiserver-kubelet-client", "kube-apiserver", ("system:masters",)
        )
        admin = pki.client("admin", "system:admin", ("system:masters",))
        plane.admin_kubeconfig.write_text(
            kubeconfig_text(plane.server, pki.ca_cert, admin, "system:admin")
        )
        plane.admin_kubeconfig.chmod(0o600)
        start(
            "kube-apiserver",
            [
                "kube-apiserver",
                f"--etcd-servers=http://{LOOPBACK}:{etcd_client}",
                f"--bind-address={LOOPBACK}",
                f"--advertise-address={LOOPBACK}",
                f"--secure-port={api_port}",
                f"--cert-dir={workdir / 'apiserver-certs'}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={pki.ca_cert}",
                # The aggregation layer's front proxy: named, so the components' delegated
                # authentication finds its CA instead of logging errors about a missing one.
                f"--requestheader-client-ca-file={pki.ca_cert}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                # The `kubernetes` Service's endpoint would be 127.0.0.1, which Endpoints refuse
                # (loopback); nothing runs in a pod here to use it.
                "--endpoint-reconciler-type=none",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa.cert}",
                f"--service-account-signing-key-file={sa.key}",
                f"--kubelet-client-certificate={kubelet_client.cert}",
                f"--kubelet-client-key={kubelet_client.key}",
                "--allow-privileged=true",
                "--profiling=false",
                "--anonymous-auth=false",
            ],
            lambda: _tls_get(api_port, "/readyz", pki, admin) == "ok",
            "ready (/readyz)",
        )

        def component(stem: str, user: str) -> list[str]:
            kubeconfig = _component_kubeconfig(workdir, pki, api_port, stem, user)
            return [
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                f"--bind-address={LOOPBACK}",
                f"--cert-dir={workdir / (stem + '-certs')}",
                "--leader-elect=false",
                "--profiling=false",
            ]

        cm_port = free_port()
        start(
            "kube-controller-manager",
            [
                "kube-controller-manager",
                *component("controller-manager", "system:kube-controller-manager"),
                f"--secure-port={cm_port}",
                "--controllers=*",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={sa.key}",
                f"--root-ca-file={pki.ca_cert}",
                f"--cluster-signing-cert-file={pki.ca_cert}",
                f"--cluster-signing-key-file={pki.ca_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
            ],
            lambda: _insecure_get(cm_port, "/healthz") == "ok",
            "healthy (/healthz)",
        )

        scheduler_port = free_port()
        start(
            "kube-scheduler",
            [
                "kube-scheduler",
                *component("scheduler", "system:kube-scheduler"),
                f"--secure-port={scheduler_port}",
            ],
            lambda: _insecure_get(scheduler_port, "/readyz") == "ok",
            "ready (/readyz)",
        )

        kwok_config = workdir / "kwok-stages.yaml"
        kwok_config.write_text(KWOK_STAGES)
        kwok_kubeconfig = _component_kubeconfig(
            workdir, pki, api_port, "kwok", "kwok", "system:masters"
        )
        kwok_port = free_port()
        key, value = KWOK_NODE_ANNOTATION
        start(
            "kwok",
            [
                "kwok",
                f"--kubeconfig={kwok_kubeconfig}",
                f"--config={kwok_config}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={key}={value}",
                f"--cidr={POD_CIDR}",
                f"--server-address={LOOPBACK}:{kwok_port}",
                f"--node-ip={LOOPBACK}",
            ],
            lambda: _http_get(kwok_port, "/healthz") == "ok",
            "healthy (/healthz)",
        )

        helm_kubeconfig = _component_kubeconfig(
            workdir, pki, api_port, "helm-controller", "helm-controller", "system:masters"
        )
        admin_pair = admin

        def helm_crds_served() -> bool:
            body = _tls_get(api_port, "/apis/helm.cattle.io/v1", pki, admin_pair)
            return '"HelmChart"' in body and '"HelmChartConfig"' in body

        start(
            "helm-controller",
            ["helm-controller", f"--kubeconfig={helm_kubeconfig}"],
            helm_crds_served,
            "serving the HelmChart CRDs",
        )
    except BaseException:
        plane.stop()
        raise
    plane.ready_seconds = time.monotonic() - plane.processes[0].started_at
    return plane, plane


def wait_until(probe, timeout_s: float, what: str, interval_s: float = 0.2):
    """Poll `probe()` until it returns something truthy; AssertionError naming `what` if not."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"{what} did not happen within {timeout_s:.0f}s (last: {last!r})")


def install_crd(kube, path: Path, field_manager: str) -> None:
    """Applies the CustomResourceDefinition in `path` and waits until the API server serves it
    (Established): a custom resource applied before that is refused."""
    import yaml

    crd = yaml.safe_load(path.read_text())
    kube.apply(crd, field_manager=field_manager)
    name = crd["metadata"]["name"]

    def established() -> bool:
        live = kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name) or {}
        conditions = (live.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    wait_until(established, 30, f"CRD {name} established")
