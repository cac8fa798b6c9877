"""What a FAKE Pi's K3s does to the test control plane: registers the node and says whether it runs.

The fake `k3s` is a stand-in (no kubelet, no containers), so the node's supervisor does what the
real K3s process would do at the API: when the node's `k3s.service` or `k3s-agent.service` is
active, it creates or updates the Node with what K3s would register: the name, address and
labels from the node's own /etc/rancher/k3s/config.yaml (as the platform wrote it), the
well-known labels K3s adds (arch arm64, os linux, the server's roles) and the kubelet version of
the installed K3s release. KWOK (`tests.harness.kube`) acts as its kubelet from then on: the
node is Ready while the annotation says k3s runs, NotReady once it says stopped (the unit was
stopped, the node reboots or powers off).

The supervisor, not the in-node stand-in, talks to the API: the stand-ins run on the node's own
/usr/bin/python3 without the Kubernetes client, and only the supervisor lives across reboots
and sees the node stop, which is when the Node must go NotReady.

The server node also gets the API server's port as its own: while its k3s runs, the node's
address, port 6443, forwards to the control plane (tests/fake_pi/apiserver_port.py), so the
kubeconfig asset's `https://<server address>:6443` reaches a real API server.
"""

import http.client
import json
import re
import ssl
import subprocess
import sys
import time
import traceback
from pathlib import Path
from urllib.parse import urlencode

import yaml

from tests.fake_pi import standin
from tests.harness.kwok_stages import K3S_STATE_ANNOTATION, KWOK_NODE_ANNOTATION

FIELD_MANAGER = "fake-pi-k3s"
K3S_CONFIG = "/etc/rancher/k3s/config.yaml"
K3S_UNITS = ("k3s.service", "k3s-agent.service")
API_PORT = 6443
# How often an unchanged Node is applied again (a kubelet posts its status at least this often).
HEARTBEAT_S = 10.0
OS_IMAGES = {
    "bookworm": "Debian GNU/Linux 12 (bookworm)",
    "trixie": "Debian GNU/Linux 13 (trixie)",
}


def k3s_release() -> str:
    """The release the installed fake `k3s` binary says it is (its kubelet version)."""
    match = re.search(r"FAKE k3s (\S+)", standin.read(standin.K3S_BIN))
    return match.group(1) if match else ""


def desired_node(state: dict, config: dict, hostname: str, running: bool) -> tuple[dict, dict]:
    """(the Node's metadata as K3s registers it, its status fields) for the node's own state."""
    name = str(config.get("node-name") or hostname)
    address = str(config.get("node-ip") or "")
    labels = {
        "kubernetes.io/arch": "arm64",
        "kubernetes.io/os": "linux",
        "kubernetes.io/hostname": name,
        "beta.kubernetes.io/arch": "arm64",
        "beta.kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "k3s",
    }
    for item in config.get("node-label") or []:
        key, _, value = str(item).partition("=")
        labels[key] = value
    if "server" not in config:  # an agent's config names the server it joins
        labels["node-role.kubernetes.io/control-plane"] = "true"
        labels["node-role.kubernetes.io/master"] = "true"
        if config.get("cluster-init"):
            labels["node-role.kubernetes.io/etcd"] = "true"
    key, value = KWOK_NODE_ANNOTATION
    metadata = {
        "name": name,
        "labels": labels,
        "annotations": {
            key: value,
            K3S_STATE_ANNOTATION: "running" if running else "stopped",
            "fakepi.piclusterops.dev/note": "FAKE Pi: KWOK acts as this node's kubelet",
        },
    }
    version = k3s_release()
    status = {
        "addresses": [
            {"type": "InternalIP", "address": address},
            {"type": "Hostname", "address": name},
        ],
        "capacity": {"cpu": "4", "memory": "8245328Ki", "pods": "110"},
        "allocatable": {"cpu": "4", "memory": "8245328Ki", "pods": "110"},
        "nodeInfo": {
            "architecture": "arm64",
            "operatingSystem": "linux",
            "osImage": OS_IMAGES.get(state.get("os", "bookworm"), "Debian GNU/Linux"),
            "kernelVersion": standin.kernel()[0],
            "kubeletVersion": version,
            "kubeProxyVersion": version,
            "containerRuntimeVersion": "fake-pi://none (no container runs)",
            "machineID": "",
            "systemUUID": "",
            "bootID": standin.read(f"{standin.FAKEPI}/boot_id").strip(),
        },
    }
    return metadata, status


def _die_with_supervisor() -> None:
    import ctypes
    import signal

    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class FakeKubelet:
    """Keeps the node's Node object in step with its fake k3s; one per node supervisor."""

    def __init__(self, credentials: dict, api_port: int, address: str, log) -> None:
        # Plain http.client, not the Kubernetes client: importing that costs every node
        # supervisor seconds of CPU at each (frequent) fresh boot of the fake cluster.
        self.credentials = credentials
        self.api_port = api_port
        self.address = address
        self.log = log
        self.last: str | None = None
        self.last_applied = 0.0
        self.forwarder: subprocess.Popen | None = None

    def sync(self, powered_on: bool = True) -> None:
        """Apply the Node for the node's current state, if it changed since the last sync.
        Errors are logged and retried on the next call (the API may be restarting)."""
        try:
            state = standin.read_state()
            running = powered_on and any(
                state["units"].get(u, ["", ""])[1] == "active" for u in K3S_UNITS
            )
            self._forward(running and state.get("role") == "server")
            config = yaml.safe_load(standin.read(K3S_CONFIG)) or {}
            if not (running or self.last):
                return  # never registered: a node without k3s is no Kubernetes node
            metadata, status = desired_node(state, config, state["hostname"], running)
            wanted = json.dumps([metadata, status], sort_keys=True)
            # Unchanged, it is re-applied only as a heartbeat (a no-op for the API when the Node
            # is there): a Node deleted behind the kubelet's back (an etcd restore) comes back
            # as a restarted kubelet re-registers it.
            if wanted == self.last and time.monotonic() - self.last_applied < HEARTBEAT_S:
                return
            node = {"apiVersion": "v1", "kind": "Node"}
            path = f"/api/v1/nodes/{metadata['name']}"
            self._apply(path, {**node, "metadata": metadata})
            self._apply(
                f"{path}/status", {**node, "metadata": {"name": metadata["name"]}, "status": status}
            )
            self.last = wanted
            self.last_applied = time.monotonic()
        except Exception:  # noqa: BLE001 - the supervisor must go on; the log says why
            self.log(f"fake kubelet: sync failed, retrying\n{traceback.format_exc()}")

    def _apply(self, path: str, manifest: dict) -> None:
        """A server-side apply as K3s's own field manager would make it."""
        context = ssl.create_default_context(cafile=self.credentials["ca"])
        context.load_cert_chain(self.credentials["cert"], self.credentials["key"])
        conn = http.client.HTTPSConnection("127.0.0.1", self.api_port, context=context, timeout=5)
        try:
            query = urlencode({"fieldManager": FIELD_MANAGER, "force": "true"})
            conn.request(
                "PATCH",
                f"{path}?{query}",
                body=json.dumps(manifest),
                headers={"Content-Type": "application/apply-patch+yaml"},
            )
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        if response.status >= 300:
            raise RuntimeError(f"PATCH {path}: {response.status} {body[:300]!r}")

    def _forward(self, wanted: bool) -> None:
        alive = self.forwarder is not None and self.forwarder.poll() is None
        if wanted and not alive:
            self.forwarder = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.fake_pi.apiserver_port",
                    self.address,
                    str(API_PORT),
                    str(self.api_port),
                ],
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_supervisor,  # noqa: PLW1509 - single-threaded caller
            )
        elif not wanted and alive:
            self.forwarder.terminate()
            self.forwarder.wait(timeout=5)
            self.forwarder = None

    def power_off(self) -> None:
        """The node stops or reboots: its k3s stops answering, the Node goes NotReady."""
        self.sync(powered_on=False)


def load(cfg: dict, log) -> FakeKubelet | None:
    """The node's fake kubelet, if the fake cluster was started with a control plane."""
    kube = cfg.get("kube")
    if not kube:
        return None
    for name in ("ca", "cert", "key"):
        if not Path(kube[name]).is_file():
            raise RuntimeError(f"the control plane's {name} file {kube[name]} is missing")
    return FakeKubelet(kube, int(kube["api_port"]), cfg["address"], log)
