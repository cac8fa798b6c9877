"""A FAKE Kubernetes API server: a loopback HTTP server answering `GET /api/v1/nodes` with a
recorded NodeList. It is not a cluster (no API server can run here): it lets the real
`kubernetes` client, our resource and the `cluster_ready` check run end to end over HTTP.

The NodeList's shape follows what a K3s v1.33 server returns (`kubectl get nodes -o json`,
trimmed to the fields the check reads); the values are synthetic.
"""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def node(name: str, address: str, ready: bool, reason: str = "KubeletReady") -> dict:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/arch": "arm64"}},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": name},
            ],
            "conditions": [
                {
                    "type": "MemoryPressure",
                    "status": "False",
                    "reason": "KubeletHasSufficientMemory",
                },
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "reason": reason if ready else "KubeletNotReady",
                    "message": "kubelet is posting ready status"
                    if ready
                    else "container runtime network not ready",
                },
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.33.5+k3s1",
                "architecture": "arm64",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
            },
        },
    }


def node_list(nodes: list[dict]) -> dict:
    return {
        "kind": "NodeList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "1"},
        "items": nodes,
    }


@contextmanager
def fake_kube_api(nodes: list[dict], bearer_token: str | None = None) -> Iterator[str]:
    """Serves the NodeList on 127.0.0.1; yields the base URL. With `bearer_token`, a request
    without that token gets 401, as from an API server whose credentials were rotated."""
    body = json.dumps(node_list(nodes)).encode()
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            requests.append(self.path)
            if bearer_token and self.headers.get("Authorization") != f"Bearer {bearer_token}":
                unauthorized = (
                    b'{"kind":"Status","status":"Failure","reason":"Unauthorized","code":401}'
                )
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(unauthorized)))
                self.end_headers()
                self.wfile.write(unauthorized)
            elif self.path.split("?")[0] == "/api/v1/nodes":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_response(404)
                self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def kubeconfig_for(url: str) -> str:
    return f"""apiVersion: v1
kind: Config
clusters:
- name: default
  cluster:
    server: {url}
contexts:
- name: default
  context: {{cluster: default, user: default}}
current-context: default
users:
- name: default
  user: {{token: fake-token-for-the-fake-api}}
"""
