"""What a release is, and how it becomes `HelmChart` resources: pure data and pure functions.

A release (an asset) is one or more K3s `HelmChart`s (helm.cattle.io/v1) in `kube-system`,
installing into the release's own namespace. Its workloads are declared once, here, with their
images and memory: the values put those resources into the chart, readiness waits for those
objects, and the capacity plan sums them. Nothing in this module talks to a cluster.
"""

import base64
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import yaml

HELMCHART_API = "helm.cattle.io/v1"
# The helm-controller K3s embeds watches kube-system; every K3s document puts HelmCharts there.
CHART_NAMESPACE = "kube-system"
# Server-side apply owner of every field the platform sets on its HelmCharts and Secrets.
FIELD_MANAGER = "piclusterops-releases"
MANAGED_BY = {"app.kubernetes.io/managed-by": "piclusterops"}
RELEASE_LABEL = "picluster.io/release"
GENERATED_KEYS = "picluster.io/generated-keys"
# Version of the charts built here from our own manifests (chartContent). Bumped with any change
# to how they are packaged; their content is also hashed into the values hash.
OWN_CHART_VERSION = "1.0.0"


@dataclass(frozen=True)
class Image:
    repository: str
    tag: str

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


@dataclass(frozen=True)
class Container:
    """One container with the resources it gets. Memory in MiB (what the capacity plan sums)."""

    name: str
    image: Image
    memory_request_mib: int
    memory_limit_mib: int
    cpu_request: str = "50m"
    cpu_limit: str = "500m"

    def resources(self) -> dict:
        return {
            "requests": {"cpu": self.cpu_request, "memory": f"{self.memory_request_mib}Mi"},
            "limits": {"cpu": self.cpu_limit, "memory": f"{self.memory_limit_mib}Mi"},
        }


@dataclass(frozen=True)
class Workload:
    """An object a release runs (as its chart names it): readiness waits for it, capacity
    counts its containers on every node its selector allows."""

    kind: str  # Deployment, StatefulSet, DaemonSet, or a CloudNativePG Cluster
    name: str
    containers: tuple[Container, ...]
    node_selector: Mapping[str, str] = field(default_factory=dict)  # empty: any node
    replicas: int = 1
    api_version: str = "apps/v1"
    # Containers that run to completion before the main ones (their memory is not added: a
    # pod's effective request is the larger of the init containers and the sum of the rest).
    init_containers: tuple[Container, ...] = ()

    @property
    def memory_request_mib(self) -> int:
        return self.replicas * sum(c.memory_request_mib for c in self.containers)

    @property
    def memory_limit_mib(self) -> int:
        return self.replicas * sum(c.memory_limit_mib for c in self.containers)

    @property
    def every_node(self) -> bool:
        return self.kind == "DaemonSet"


@dataclass(frozen=True)
class ValuesSecret:
    """Chart values read by the helm-controller from a Secret in kube-system, so the value
    never sits in the HelmChart, its values or the Dagster metadata."""

    name: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class Chart:
    """One HelmChart of a release: an upstream chart (repo, chart, pinned version) or our own
    manifests packaged as a chart (`manifests`, sent as chartContent)."""

    name: str  # the HelmChart's name, which is also the Helm release's name
    values: Mapping = field(default_factory=dict)
    repo: str = ""
    chart: str = ""
    version: str = ""
    manifests: tuple[Mapping, ...] = ()
    values_secrets: tuple[ValuesSecret, ...] = ()
    # Charts owning data or CRDs are left failed, never uninstalled and reinstalled (the
    # controller's default `reinstall` would delete a database or every CR of a CRD).
    owns_data: bool = False
    # Go's canonical form: the controller writes the field back as Go prints it ("10m" becomes
    # "10m0s") and so becomes its owner; any other spelling would conflict with it on every apply.
    timeout: str = "10m0s"
    # The controller's default is 1000 retries: a broken chart would look "still running" for
    # days. Six retries with the Job's doubling back-off is about ten minutes (room for a chart
    # whose CRDs another chart of the release is still installing).
    back_off_limit: int = 6

    @property
    def own(self) -> bool:
        return bool(self.manifests)

    @property
    def chart_version(self) -> str:
        return OWN_CHART_VERSION if self.own else self.version


@dataclass(frozen=True)
class GeneratedSecret:
    """A Secret the platform generates once (random values, created when missing and never
    rewritten), copied into the namespaces that read it. Only names and keys are ever rendered.

    `username` keys get the given fixed user name; every other key a random token."""

    name: str
    namespace: str
    keys: tuple[str, ...]
    type: str = "Opaque"
    username: str = ""
    copies: tuple[str, ...] = ()  # further namespaces holding the same values
    # Derived instead of random: "namespace/name" of another release's generated Secret, and
    # (key here, key there) pairs, for charts that want the same value under their own key.
    derived_from: str = ""
    key_map: tuple[tuple[str, str], ...] = ()
    # Copied instead of random: values the applying process holds (its settings, its SSH
    # files), read on every apply and written straight into the Secret. `keys` are the ones
    # it must have; the source may add optional ones. It raises naming what is missing.
    copied_from: Callable[[], dict[str, str]] | None = field(default=None, compare=False)
    copied_what: str = ""  # what the values are copied from, in the apply's report

    @property
    def namespaces(self) -> tuple[str, ...]:
        return (self.namespace, *self.copies)


@dataclass(frozen=True)
class AdminSecret:
    """A Secret only an admin can make, because the platform cannot know what it holds (a
    webhook's URL, a mail password). A release plans or applies only once it exists with
    every key listed; only the names of its keys are ever read."""

    name: str
    namespace: str
    keys: tuple[tuple[str, str], ...]  # (key, what its value is), e.g. ("webhook-url", "...")
    needed_by: str  # the settings that need it, e.g. PICLUSTER_ALERT_RECEIVERS=webhook
    guide: str  # where the docs say what goes in it


@dataclass(frozen=True)
class Release:
    """A platform release: one asset, applied in `needs` order."""

    name: str  # asset name, e.g. object_store
    namespace: str  # where its charts install (targetNamespace)
    charts: tuple[Chart, ...]
    workloads: tuple[Workload, ...]
    description: str
    needs: tuple[str, ...] = ()  # releases it runs on (asset deps)
    secrets: tuple[GeneratedSecret, ...] = ()
    admin_secrets: tuple[AdminSecret, ...] = ()  # checked before a plan or an apply
    # Applied directly, before the charts, after the Secrets: what the release's pods read at
    # start (ConfigMaps), so they exist before any pod does. Never in a chart as well (Helm
    # refuses to install over an object it does not own).
    objects: tuple[Mapping, ...] = ()


@dataclass(frozen=True)
class PlannedRelease:
    """A release a later issue builds: only its workloads, so the capacity plan knows now
    whether the whole catalogue fits."""

    name: str
    namespace: str
    workloads: tuple[Workload, ...]
    source: str  # where its sizes come from


# --- rendering ---------------------------------------------------------------------------------


def chart_content(chart: Chart) -> str:
    """Our manifests as a chart archive, base64 (HelmChart `chartContent`).

    Byte-for-byte reproducible (fixed times, owners and order), so re-rendering the same
    manifests gives the same spec and a second apply changes nothing."""
    files = {
        f"{chart.name}/Chart.yaml": yaml.safe_dump(
            {
                "apiVersion": "v2",
                "name": chart.name,
                "version": OWN_CHART_VERSION,
                "description": "Manifests rendered by PiClusterOps",
                "type": "application",
            },
            sort_keys=True,
        ),
    }
    for i, manifest in enumerate(chart.manifests):
        kind = str(manifest["kind"]).lower()
        name = manifest["metadata"]["name"]
        # Helm would read `{{` in a value as a template: none of ours has one, and a test holds it.
        files[f"{chart.name}/templates/{i:02d}-{kind}-{name}.yaml"] = yaml.safe_dump(
            manifest, sort_keys=True
        )
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path in sorted(files):
            data = files[path].encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return base64.b64encode(packed.getvalue()).decode()


def helmchart(release: Release, chart: Chart) -> dict:
    """The HelmChart resource for one chart of a release."""
    spec: dict = {
        "targetNamespace": release.namespace,
        "createNamespace": True,
        "failurePolicy": "abort" if chart.owns_data else "reinstall",
        "timeout": chart.timeout,
        "backOffLimit": chart.back_off_limit,
        # The CRD defaults it and then refuses any change (immutable): say it, so what we send
        # is what is stored.
        "driver": "secret",
    }
    if chart.own:
        spec["chartContent"] = chart_content(chart)
    else:
        spec.update({"repo": chart.repo, "chart": chart.chart, "version": chart.version})
    if chart.values:
        spec["values"] = json.loads(json.dumps(chart.values))  # a plain, independent copy
    if chart.values_secrets:
        spec["valuesSecrets"] = [
            {"name": s.name, "keys": list(s.keys)} for s in chart.values_secrets
        ]
    return {
        "apiVersion": HELMCHART_API,
        "kind": "HelmChart",
        "metadata": {
            "name": chart.name,
            "namespace": CHART_NAMESPACE,
            "labels": {**MANAGED_BY, RELEASE_LABEL: release.name},
        },
        "spec": spec,
    }


def helmcharts(release: Release) -> list[dict]:
    return [helmchart(release, chart) for chart in release.charts]


def values_hash(manifests: list[dict]) -> str:
    """sha256 of what a release asks the controller for (specs, canonical JSON): equal hashes,
    equal releases."""
    canonical = json.dumps([m["spec"] for m in manifests], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def secret_manifests(release: Release) -> list[dict]:
    """The Secrets a release reads, as shown and validated: names, namespaces, types and the
    keys they will hold (an annotation), never values: those are generated once, on the
    cluster side of an apply (`secrets.ensure_secrets`)."""
    out = []
    for secret in release.secrets:
        for namespace in secret.namespaces:
            out.append(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {
                        "name": secret.name,
                        "namespace": namespace,
                        "labels": {**MANAGED_BY, RELEASE_LABEL: release.name},
                        "annotations": {GENERATED_KEYS: ",".join(sorted(secret.keys))},
                    },
                    "type": secret.type,
                }
            )
    return out


def images(release: Release | PlannedRelease) -> list[tuple[str, Image]]:
    """(workload/container, image) for every container of a release."""
    out = []
    for w in release.workloads:
        for c in (*w.init_containers, *w.containers):
            out.append((f"{w.name}/{c.name}", c.image))
    return out


def to_yaml(manifests: list[dict]) -> str:
    return yaml.safe_dump_all(manifests, sort_keys=False)
