"""The Kubernetes API of the platform's K3s cluster, through the official Python client.

Every object goes through one path: raw JSON over the client's `ApiClient.call_api` (no
generated models: they reject fields a K3s release omits and know nothing of HelmCharts), with
the resource's plural found by API discovery. Writes are server-side applies under a named field
manager, so two writers of one object conflict instead of overwriting each other.

Credentials: the kubeconfig the `kubeconfig` asset fetched (0600 under the platform's home), or,
with no kubeconfig configured and running in a pod, that pod's ServiceAccount. Nothing here reads
`~/.kube` or a KUBECONFIG variable. The client is imported inside the methods (it is heavy and the
code location must load fast).
"""

import builtins
import contextlib
import difflib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class KubeconfigMissing(RuntimeError):
    """No kubeconfig yet: the cluster was not installed or the kubeconfig asset not applied."""


class ClusterUnreachable(RuntimeError):
    """The API server did not answer, or refused the request; the message names the server
    address and, for a refusal, the status and what to check (never a credential)."""


class ApiRefused(ClusterUnreachable):
    """The API server answered a request about one object with an error status."""

    def __init__(self, message: str, status: int, reason: str, obj: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.object = obj  # kind/namespace/name


class ApplyConflict(ApiRefused):
    """A server-side apply touched fields another field manager owns (409)."""


class DrainBlocked(RuntimeError):
    """A PodDisruptionBudget kept refusing a pod's eviction; nothing was deleted behind it."""

    def __init__(self, message: str, node: str, pod: str, budgets: list[str]) -> None:
        super().__init__(message)
        self.node = node
        self.pod = pod  # namespace/name
        self.budgets = budgets  # namespace/name of each PDB that covers the pod


class DrainTimedOut(RuntimeError):
    """The drain did not finish in time; the message names the pods still on the node."""


@dataclass(frozen=True)
class NodeStatus:
    name: str
    ready: bool
    reason: str  # the Ready condition's reason/message, e.g. "KubeletReady"
    kubelet_version: str
    internal_ip: str


@dataclass(frozen=True)
class ManifestDiff:
    """What applying a manifest would change, from a server-side dry run against the live
    object (defaults and admission included). Secret values are never shown, only whether they
    change."""

    kind: str
    namespace: str | None
    name: str
    exists: bool
    changed: bool
    diff: str  # unified diff of the YAML, metadata noise and status left out


@dataclass(frozen=True)
class RolloutStatus:
    ready: bool
    reason: str


@dataclass
class DrainReport:
    node: str
    evicted: list[str] = field(default_factory=list)  # namespace/name
    skipped_daemonset: list[str] = field(default_factory=list)
    skipped_selector: list[str] = field(default_factory=list)
    retries: int = 0  # evictions refused with 429 and tried again
    seconds: float = 0.0


# Fields the server sets on every object: not part of what a manifest asks for.
_METADATA_NOISE = (
    "managedFields",
    "resourceVersion",
    "generation",
    "uid",
    "creationTimestamp",
    "selfLink",
)
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_ROLLOUT_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}


def _ref(kind: str, namespace: str | None, name: str) -> str:
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def _strip_noise(obj: dict | None) -> dict:
    if not obj:
        return {}
    clean = json.loads(json.dumps(obj))
    clean.pop("status", None)
    metadata = clean.get("metadata", {})
    for key in _METADATA_NOISE:
        metadata.pop(key, None)
    annotations = metadata.get("annotations") or {}
    annotations.pop(_LAST_APPLIED, None)
    if not annotations:
        metadata.pop("annotations", None)
    return clean


def _mask_secret_values(before: dict, after: dict) -> None:
    """Replace a Secret's values with markers in place: equal, changed, added, removed."""
    for key in ("data", "stringData"):
        old, new = before.get(key) or {}, after.get(key) or {}
        for name in set(old) | set(new):
            if name in old and name in new:
                marker = "(secret)" if old[name] == new[name] else "(secret, changed)"
                old[name], new[name] = "(secret)", marker
            elif name in new:
                new[name] = "(secret, added)"
            else:
                old[name] = "(secret)"


def _label_selector_matches(selector: dict | None, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) against a pod's labels. An empty
    selector on a PDB matches every pod of its namespace (policy/v1)."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


class KubernetesResource(dg.ConfigurableResource):
    """The cluster's API, authenticated by the kubeconfig the platform fetched, or by the pod's
    ServiceAccount when `kubeconfig_path` is empty and it runs in a pod."""

    kubeconfig_path: str = ""
    request_timeout_s: float = 10.0
    # Where a pod's ServiceAccount token and CA are mounted (a test points it elsewhere).
    service_account_dir: str = SERVICE_ACCOUNT_DIR

    _resources: dict = PrivateAttr(default_factory=dict)

    # --- connection ---------------------------------------------------------------------------

    def in_cluster(self) -> bool:
        """True when this resource authenticates as the pod's ServiceAccount."""
        return not self.kubeconfig_path and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))

    def api_client(self):
        """A `kubernetes.client.ApiClient` for these credentials (close it after use)."""
        from kubernetes import client, config

        configuration = client.Configuration()
        if self.in_cluster():
            directory = Path(self.service_account_dir)
            # The loader refreshes the token from the file as the kubelet rotates it.
            config.incluster_config.InClusterConfigLoader(
                token_filename=str(directory / "token"),
                cert_filename=str(directory / "ca.crt"),
                try_refresh_token=True,
            ).load_and_set(configuration)
            return client.ApiClient(configuration)
        path = Path(self.kubeconfig_path).expanduser() if self.kubeconfig_path else None
        if path is None or not path.is_file():
            raise KubeconfigMissing(
                f"no kubeconfig at {path or '(kubeconfig_path not set)'}: apply k3s_server and "
                "the kubeconfig asset first"
            )
        config.load_kube_config(config_file=str(path), client_configuration=configuration)
        return client.ApiClient(configuration)

    def server(self) -> str:
        if self.in_cluster():
            host = os.environ["KUBERNETES_SERVICE_HOST"]
            port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            return f"https://{host}:{port}"
        import yaml

        path = Path(self.kubeconfig_path).expanduser()
        if not self.kubeconfig_path or not path.is_file():
            return "(no kubeconfig)"
        try:
            config = yaml.safe_load(path.read_text()) or {}
            clusters = config.get("clusters") or [{}]
            return str(clusters[0].get("cluster", {}).get("server", "(unknown)"))
        except (yaml.YAMLError, AttributeError, IndexError):
            return f"(the server in {path})"

    def _credentials_hint(self, status: int, action: str) -> str:
        where = (
            f"the ServiceAccount token in {self.service_account_dir}"
            if self.in_cluster()
            else self.kubeconfig_path
        )
        if status == 401:
            return (
                f"the credentials in {where} were not accepted; apply the kubeconfig asset "
                "again to fetch the current ones"
            )
        if status == 403:
            return f"the user in {where} may not {action}"
        return ""

    def _request(
        self,
        method: str,
        path: str,
        *,
        obj: str,
        action: str,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        allow: tuple[int, ...] = (),
    ) -> tuple[int, dict | str]:
        """One API call; returns (status, parsed body). Statuses in `allow` are returned, any
        other error is raised naming the server, the object and the status."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        with self.api_client() as api:
            try:
                # Unparsed: the raw urllib3 response, whatever the kind.
                response = api.call_api(
                    path,
                    method,
                    query_params=query or [],
                    header_params={"Content-Type": content_type, "Accept": "application/json, */*"},
                    body=body,
                    auth_settings=["BearerToken"],
                    _preload_content=False,
                    _request_timeout=self.request_timeout_s,
                )
                status, raw = response.status, response.data
            except ApiException as exc:
                status, raw = exc.status, exc.body or b""
                if status not in allow:
                    raise self._refusal(status, exc.reason, raw, obj, action) from None
            except (HTTPError, OSError) as exc:
                raise ClusterUnreachable(
                    f"the Kubernetes API at {self.server()} did not answer ({action} {obj}): "
                    f"{type(exc).__name__}"
                ) from None
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        try:
            return status, json.loads(text) if text else {}
        except json.JSONDecodeError:
            return status, text

    def _refusal(self, status: int, reason: str, raw, obj: str, action: str) -> ApiRefused:
        message = ""
        with contextlib.suppress(json.JSONDecodeError, AttributeError, TypeError):
            message = str(json.loads(raw).get("message", ""))
        # A Secret's validation message can quote the value it refused.
        if obj.startswith("Secret/"):
            message = ""
        hint = self._credentials_hint(status, action)
        text = f"the Kubernetes API at {self.server()} refused to {action} {obj}: {status} {reason}"
        if message:
            text += f": {message[:400]}"
        if hint:
            text += f"; {hint}"
        cls = ApplyConflict if status == 409 and "apply" in action else ApiRefused
        return cls(text, status, reason, obj)

    # --- discovery ----------------------------------------------------------------------------

    def _resource_for(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(plural, namespaced) of `kind` in `api_version`, from API discovery (cached; looked
        up again once when a kind is new, e.g. a CRD registered since)."""
        key = (api_version, kind)
        if key not in self._resources:
            path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            _status, listing = self._request(
                "GET", path, obj=api_version, action="discover the resources of", allow=(404,)
            )
            for item in listing.get("resources", []) if isinstance(listing, dict) else []:
                if "/" not in item["name"]:
                    self._resources[(api_version, item["kind"])] = (
                        item["name"],
                        item["namespaced"],
                    )
            if key not in self._resources:
                raise ApiRefused(
                    f"the Kubernetes API at {self.server()} serves no kind {kind} in "
                    f"{api_version} (is its CRD installed?)",
                    404,
                    "NotFound",
                    kind,
                )
        return self._resources[key]

    def _path(
        self, api_version: str, kind: str, name: str | None = None, namespace: str | None = None
    ) -> str:
        plural, namespaced = self._resource_for(api_version, kind)
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        if namespaced and namespace:
            base += f"/namespaces/{namespace}"
        elif namespaced and name is not None:
            raise ValueError(f"{kind}/{name} is namespaced: give its namespace")
        path = f"{base}/{plural}"
        return f"{path}/{name}" if name is not None else path

    # --- objects ------------------------------------------------------------------------------

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict | None:
        """The object as the server has it, or None if there is none."""
        status, body = self._request(
            "GET",
            self._path(api_version, kind, name, namespace),
            obj=_ref(kind, namespace, name),
            action="read",
            allow=(404,),
        )
        return None if status == 404 else body  # type: ignore[return-value]

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict]:
        """Every object of `kind` (in `namespace`, or everywhere)."""
        query = []
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        _status, body = self._request(
            "GET",
            self._path(api_version, kind, None, namespace),
            obj=_ref(kind, namespace, "*"),
            action="list",
            query=query,
        )
        items = body.get("items", []) if isinstance(body, dict) else []
        # List items carry no kind/apiVersion; give them back so callers can re-apply them.
        for item in items:
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", api_version)
        return items

    def apply(
        self,
        manifest: dict,
        *,
        field_manager: str,
        dry_run: bool = False,
        force: bool = False,
        subresource: str = "",
    ) -> dict:
        """Server-side apply of `manifest` as `field_manager`. Returns what the server answers:
        the object after the apply (for a dry run: what it WOULD be, nothing stored). A field
        another manager owns raises ApplyConflict unless `force`. `subresource="status"`
        applies the manifest's status (what a controller or kubelet reports)."""
        if not field_manager:
            raise ValueError("a server-side apply needs a field manager naming the writer")
        metadata = manifest.get("metadata") or {}
        kind, name = manifest.get("kind"), metadata.get("name")
        if not manifest.get("apiVersion") or not kind or not name:
            raise ValueError("a manifest needs apiVersion, kind and metadata.name")
        namespace = metadata.get("namespace")
        query: list[tuple[str, Any]] = [("fieldManager", field_manager)]
        if force:
            query.append(("force", "true"))
        if dry_run:
            query.append(("dryRun", "All"))
        _status, body = self._request(
            "PATCH",
            self._path(manifest["apiVersion"], kind, name, namespace)
            + (f"/{subresource}" if subresource else ""),
            obj=_ref(kind, namespace, name),
            action="dry-run apply" if dry_run else "apply",
            query=query,
            # The client sends it as JSON, which is YAML: the apply content type takes it.
            body=manifest,
            content_type="application/apply-patch+yaml",
        )
        return body  # type: ignore[return-value]

    def apply_diff(self, manifest: dict, *, field_manager: str) -> ManifestDiff:
        """What `apply(manifest)` would change, without changing anything."""
        import yaml

        metadata = manifest.get("metadata") or {}
        kind, name, namespace = manifest["kind"], metadata["name"], metadata.get("namespace")
        live = self.get(manifest["apiVersion"], kind, name, namespace)
        would_be = self.apply(manifest, field_manager=field_manager, dry_run=True)
        before, after = _strip_noise(live), _strip_noise(would_be)
        if kind == "Secret":
            _mask_secret_values(before, after)
        before_text = yaml.safe_dump(before, sort_keys=True) if live is not None else ""
        after_text = yaml.safe_dump(after, sort_keys=True)
        ref = _ref(kind, namespace, name)
        diff = "".join(
            difflib.unified_diff(
                before_text.splitlines(keepends=True),
                after_text.splitlines(keepends=True),
                fromfile=f"{ref} (live)" if live is not None else "/dev/null",
                tofile=f"{ref} (after apply)",
            )
        )
        return ManifestDiff(kind, namespace, name, live is not None, bool(diff), diff)

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete the object (dependents in the background); False if there was none."""
        status, _body = self._request(
            "DELETE",
            self._path(api_version, kind, name, namespace),
            obj=_ref(kind, namespace, name),
            action="delete",
            body={"propagationPolicy": "Background"},
            allow=(404,),
        )
        return status != 404

    def _merge_patch(self, api_version, kind, name, namespace, patch, action, subresource=""):
        path = self._path(api_version, kind, name, namespace) + (
            f"/{subresource}" if subresource else ""
        )
        _status, body = self._request(
            "PATCH",
            path,
            obj=_ref(kind, namespace, name),
            action=action,
            body=patch,
            content_type="application/merge-patch+json",
        )
        return body

    # --- rollouts -----------------------------------------------------------------------------

    def rollout_status(self, kind: str, name: str, namespace: str) -> RolloutStatus:
        """Whether a Deployment, StatefulSet or DaemonSet has rolled out its current spec, with
        the reason when it has not (as `kubectl rollout status` judges it)."""
        if kind not in _ROLLOUT_KINDS:
            raise ValueError(f"rollout status is for {sorted(_ROLLOUT_KINDS)}, not {kind}")
        obj = self.get("apps/v1", kind, name, namespace)
        ref = _ref(kind, namespace, name)
        if obj is None:
            return RolloutStatus(False, f"{ref} does not exist")
        spec, status = obj.get("spec", {}), obj.get("status", {})
        if obj["metadata"].get("generation", 0) > status.get("observedGeneration", 0):
            return RolloutStatus(False, f"{ref}: the controller has not seen the newest spec yet")
        if kind == "Deployment":
            return _deployment_rollout(ref, spec, status)
        if kind == "StatefulSet":
            return _statefulset_rollout(ref, spec, status)
        return _daemonset_rollout(ref, status)

    def wait_for_rollout(
        self, kind: str, name: str, namespace: str, timeout_s: float, poll_s: float = 0.5
    ) -> RolloutStatus:
        """Poll `rollout_status` until ready or `timeout_s`; the last status either way (its
        reason says what was still missing)."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.rollout_status(kind, name, namespace)
            if status.ready or "ProgressDeadlineExceeded" in status.reason:
                return status
            if time.monotonic() >= deadline:
                return RolloutStatus(False, f"timed out after {timeout_s:.0f}s: {status.reason}")
            time.sleep(poll_s)

    # --- nodes --------------------------------------------------------------------------------

    def cordon(self, node: str) -> None:
        """Mark `node` unschedulable (the API adds the `unschedulable` taint)."""
        self._merge_patch("v1", "Node", node, None, {"spec": {"unschedulable": True}}, "cordon")

    def uncordon(self, node: str) -> None:
        self._merge_patch("v1", "Node", node, None, {"spec": {"unschedulable": None}}, "uncordon")

    def drain(
        self,
        node: str,
        *,
        timeout_s: float,
        skip_pod_selector: str | None = None,
        max_retries_per_pod: int = 5,
        retry_interval_s: float = 1.0,
    ) -> DrainReport:
        """Cordon `node` and evict its pods through the Eviction API, so every
        PodDisruptionBudget is honoured by the API server itself. A 429 (a budget allows no
        disruption now) is retried up to `max_retries_per_pod` times, `retry_interval_s` apart,
        then DrainBlocked names the pod and its budget; a pod is never deleted directly.
        DaemonSet pods stay (their controller would put them straight back), as do pods
        matching `skip_pod_selector`. Waits until the evicted pods are gone, at most
        `timeout_s` in all (DrainTimedOut)."""
        started = time.monotonic()
        deadline = started + timeout_s
        report = DrainReport(node)
        self.cordon(node)
        on_node = f"spec.nodeName={node}"
        pods = self.list("v1", "Pod", field_selector=on_node)
        skip = set()
        if skip_pod_selector:
            skip = {
                (p["metadata"]["namespace"], p["metadata"]["name"])
                for p in self.list(
                    "v1", "Pod", label_selector=skip_pod_selector, field_selector=on_node
                )
            }
        pending: dict[tuple[str, str], dict] = {}
        # Pods already being deleted need no eviction, only waiting for.
        evicted_uids: dict[tuple[str, str], str] = {}
        for pod in pods:
            meta = pod["metadata"]
            key = (meta["namespace"], meta["name"])
            owners = meta.get("ownerReferences") or []
            if any(o.get("kind") == "DaemonSet" and o.get("controller") for o in owners):
                report.skipped_daemonset.append("/".join(key))
            elif key in skip:
                report.skipped_selector.append("/".join(key))
            elif meta.get("deletionTimestamp"):
                evicted_uids[key] = meta["uid"]
            elif pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
                pending[key] = pod
        attempts = dict.fromkeys(pending, 0)
        while pending:
            for key in list(pending):
                if time.monotonic() >= deadline:
                    raise DrainTimedOut(
                        f"draining {node} timed out after {timeout_s:.0f}s; not yet evicted: "
                        + ", ".join("/".join(k) for k in sorted(pending))
                    )
                outcome = self._evict(*key)
                if outcome == "evicted":
                    evicted_uids[key] = pending.pop(key)["metadata"]["uid"]
                    report.evicted.append("/".join(key))
                elif outcome == "gone":
                    pending.pop(key)
                else:  # refused by a disruption budget
                    attempts[key] += 1
                    report.retries += 1
                    if attempts[key] > max_retries_per_pod:
                        budgets = self._budgets_covering(pending[key])
                        raise DrainBlocked(
                            f"draining {node}: the eviction of pod {'/'.join(key)} was refused "
                            f"{attempts[key]} times by PodDisruptionBudget "
                            f"{', '.join(budgets) or '(none found)'}, which allows no "
                            "disruption now; nothing was deleted. Add capacity or wait for the "
                            "budget's pods to be ready, then drain again",
                            node,
                            "/".join(key),
                            budgets,
                        )
            if pending:
                time.sleep(min(retry_interval_s, max(0.0, deadline - time.monotonic())))
        self._wait_pods_gone(node, evicted_uids, deadline, timeout_s)
        report.seconds = time.monotonic() - started
        return report

    def _evict(self, namespace: str, name: str) -> str:
        status, _body = self._request(
            "POST",
            f"/api/v1/namespaces/{namespace}/pods/{name}/eviction",
            obj=_ref("Pod", namespace, name),
            action="evict",
            body={
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": {"name": name, "namespace": namespace},
            },
            allow=(404, 429),
        )
        return {404: "gone", 429: "blocked"}.get(status, "evicted")

    def _budgets_covering(self, pod: dict) -> "builtins.list[str]":
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        return [
            f"{meta['namespace']}/{pdb['metadata']['name']}"
            for pdb in self.list("policy/v1", "PodDisruptionBudget", namespace=meta["namespace"])
            if _label_selector_matches(pdb.get("spec", {}).get("selector"), labels)
        ]

    def _wait_pods_gone(self, node, uids: dict, deadline: float, timeout_s: float) -> None:
        while True:
            present = {
                (p["metadata"]["namespace"], p["metadata"]["name"]): p["metadata"]["uid"]
                for p in self.list("v1", "Pod", field_selector=f"spec.nodeName={node}")
            }
            left = sorted(k for k, uid in uids.items() if present.get(k) == uid)
            if not left:
                return
            if time.monotonic() >= deadline:
                raise DrainTimedOut(
                    f"draining {node} timed out after {timeout_s:.0f}s; evicted but not yet "
                    "gone: " + ", ".join("/".join(k) for k in left)
                )
            time.sleep(0.2)

    def node_statuses(self) -> "builtins.list[NodeStatus]":
        """Every node the API knows, with its Ready condition."""
        out = []
        for item in self.list("v1", "Node"):
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

    # --- pods ---------------------------------------------------------------------------------

    def pod_logs(self, name: str, namespace: str, tail_lines: int = 20) -> str:
        """The last lines of a pod's log (through the API server, from the node's kubelet)."""
        _status, body = self._request(
            "GET",
            f"/api/v1/namespaces/{namespace}/pods/{name}/log",
            obj=_ref("Pod", namespace, name),
            action="read the log of",
            query=[("tailLines", tail_lines)],
            content_type="text/plain",
        )
        return body if isinstance(body, str) else json.dumps(body)

    # --- access reviews -----------------------------------------------------------------------

    def can_i(
        self,
        verb: str,
        resource: str,
        *,
        group: str = "",
        namespace: str | None = None,
        subresource: str = "",
        name: str = "",
    ) -> bool:
        """Whether whoever this resource authenticates as may `verb` the `resource`
        (SelfSubjectAccessReview: the API server's own authorizers answer)."""
        attributes = _attributes(verb, resource, group, namespace, subresource, name)
        _status, body = self._request(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            obj="SelfSubjectAccessReview",
            action="create",
            body={
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attributes},
            },
        )
        return bool(body.get("status", {}).get("allowed"))  # type: ignore[union-attr]

    def access_review(
        self,
        user_or_sa: str,
        verb: str,
        resource: str,
        *,
        groups: tuple[str, ...] = (),
        group: str = "",
        namespace: str | None = None,
        subresource: str = "",
    ) -> bool:
        """Whether `user_or_sa` may `verb` the `resource` (SubjectAccessReview; needs the right
        to create one). A ServiceAccount (`system:serviceaccount:<ns>:<name>`) gets the groups
        its token would carry."""
        groups = tuple(groups)
        if user_or_sa.startswith("system:serviceaccount:"):
            sa_namespace = user_or_sa.split(":")[2]
            groups += (
                "system:serviceaccounts",
                f"system:serviceaccounts:{sa_namespace}",
                "system:authenticated",
            )
        spec: dict[str, Any] = {
            "user": user_or_sa,
            "resourceAttributes": _attributes(verb, resource, group, namespace, subresource, ""),
        }
        if groups:
            spec["groups"] = sorted(set(groups))
        _status, body = self._request(
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            obj="SubjectAccessReview",
            action="create",
            body={
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": spec,
            },
        )
        return bool(body.get("status", {}).get("allowed"))  # type: ignore[union-attr]


def _attributes(verb, resource, group, namespace, subresource, name) -> dict:
    attributes = {"verb": verb, "resource": resource, "group": group}
    if namespace:
        attributes["namespace"] = namespace
    if subresource:
        attributes["subresource"] = subresource
    if name:
        attributes["name"] = name
    return attributes


def _deployment_rollout(ref: str, spec: dict, status: dict) -> RolloutStatus:
    progressing = next(
        (c for c in status.get("conditions", []) if c.get("type") == "Progressing"), {}
    )
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return RolloutStatus(False, f"{ref}: ProgressDeadlineExceeded")
    want = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    if updated < want:
        return RolloutStatus(False, f"{ref}: {updated} of {want} replicas updated")
    if status.get("replicas", 0) > updated:
        old = status["replicas"] - updated
        return RolloutStatus(False, f"{ref}: {old} old replicas pending termination")
    available = status.get("availableReplicas", 0)
    if available < updated:
        return RolloutStatus(False, f"{ref}: {available} of {updated} updated replicas available")
    return RolloutStatus(True, f"{ref}: {available} of {want} replicas available")


def _statefulset_rollout(ref: str, spec: dict, status: dict) -> RolloutStatus:
    want = spec.get("replicas", 1)
    ready = status.get("readyReplicas", 0)
    if ready < want:
        return RolloutStatus(False, f"{ref}: {ready} of {want} replicas ready")
    strategy = spec.get("updateStrategy", {})
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        partition = (strategy.get("rollingUpdate") or {}).get("partition", 0)
        if partition:
            updated = status.get("updatedReplicas", 0)
            if updated < want - partition:
                return RolloutStatus(
                    False, f"{ref}: {updated} of {want - partition} partitioned replicas updated"
                )
            return RolloutStatus(True, f"{ref}: partitioned roll-out complete")
        if status.get("updateRevision") != status.get("currentRevision"):
            return RolloutStatus(
                False,
                f"{ref}: {status.get('updatedReplicas', 0)} of {want} replicas at revision "
                f"{status.get('updateRevision')}",
            )
    return RolloutStatus(True, f"{ref}: {ready} of {want} replicas ready")


def _daemonset_rollout(ref: str, status: dict) -> RolloutStatus:
    want = status.get("desiredNumberScheduled", 0)
    updated = status.get("updatedNumberScheduled", 0)
    if updated < want:
        return RolloutStatus(False, f"{ref}: {updated} of {want} pods updated")
    available = status.get("numberAvailable", 0)
    if available < want:
        return RolloutStatus(False, f"{ref}: {available} of {want} updated pods available")
    return RolloutStatus(True, f"{ref}: {available} of {want} pods available")
