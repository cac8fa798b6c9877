"""The Kubernetes API of the platform's K3s cluster, through the official Python client.

The client is imported inside the methods (it is heavy and the code location must load fast).
The kubeconfig is the one the `kubeconfig` asset fetched from the K3s server and stored 0600
under the platform's home folder; nothing here reads `~/.kube` or the environment's defaults.
"""

from dataclasses import dataclass
from pathlib import Path

import dagster as dg


class KubeconfigMissing(RuntimeError):
    """No kubeconfig yet: the cluster was not installed or the kubeconfig asset not applied."""


class ClusterUnreachable(RuntimeError):
    """The API server did not answer, or refused the request; the message names the server
    address and, for a refusal, the status and what to check (never a credential)."""


@dataclass(frozen=True)
class NodeStatus:
    name: str
    ready: bool
    reason: str  # the Ready condition's reason/message, e.g. "KubeletReady"
    kubelet_version: str
    internal_ip: str


class KubernetesResource(dg.ConfigurableResource):
    """The cluster's API, authenticated by the kubeconfig the platform fetched."""

    kubeconfig_path: str
    request_timeout_s: float = 10.0

    def api_client(self):
        """A `kubernetes.client.ApiClient` for this kubeconfig (close it after use)."""
        from kubernetes import client, config

        path = Path(self.kubeconfig_path).expanduser()
        if not path.is_file():
            raise KubeconfigMissing(
                f"no kubeconfig at {path}: apply k3s_server and the kubeconfig asset first"
            )
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(path), client_configuration=configuration)
        return client.ApiClient(configuration)

    def server(self) -> str:
        import yaml

        path = Path(self.kubeconfig_path).expanduser()
        if not path.is_file():
            return "(no kubeconfig)"
        config = yaml.safe_load(path.read_text()) or {}
        clusters = config.get("clusters") or [{}]
        return str(clusters[0].get("cluster", {}).get("server", "(unknown)"))

    def node_statuses(self) -> list[NodeStatus]:
        """Every node the API knows, with its Ready condition."""
        import json

        from kubernetes import client
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        with self.api_client() as api:
            try:
                # Raw JSON: the client's generated models reject fields a K3s release omits.
                response = client.CoreV1Api(api).list_node(
                    _request_timeout=self.request_timeout_s, _preload_content=False
                )
                data = json.loads(response.data)
            except ApiException as exc:
                hint = {
                    401: f"the credentials in {self.kubeconfig_path} were not accepted; apply "
                    "the kubeconfig asset again to fetch the current ones",
                    403: f"the user in {self.kubeconfig_path} may not list nodes",
                }.get(exc.status, "")
                raise ClusterUnreachable(
                    f"the Kubernetes API at {self.server()} refused to list nodes: "
                    f"{exc.status} {exc.reason}" + (f"; {hint}" if hint else "")
                ) from None
            except (HTTPError, OSError) as exc:
                raise ClusterUnreachable(
                    f"the Kubernetes API at {self.server()} did not answer: {type(exc).__name__}"
                ) from None
        out = []
        for item in data.get("items", []):
            status = item.get("status", {})
            ready = next(
                (c for c in status.get("conditions", []) if c.get("type") == "Ready"), None
            )
            addresses = status.get("addresses", [])
            address = next((a["address"] for a in addresses if a.get("type") == "InternalIP"), "")
            out.append(
                NodeStatus(
                    name=item["metadata"]["name"],
                    ready=bool(ready and ready.get("status") == "True"),
                    reason=(ready.get("reason") or ready.get("message") or "")
                    if ready
                    else "no Ready condition",
                    kubelet_version=status.get("nodeInfo", {}).get("kubeletVersion", ""),
                    internal_ip=address,
                )
            )
        return out
