"""The `logging` release: central logs from every node and pod, kept 30 days, searchable per
release. Loki (single binary, filesystem storage) and Fluent Bit (one per node), as our own
manifests.

Why not the seed's Fluentd + Elasticsearch + Kibana: Elasticsearch alone wants a 1-2 GB heap
and ~3 GiB of limit per node to be usable, Kibana ~1 GiB, Fluentd (Ruby) ~200-300 MiB per node;
with the built releases the cluster has under 1.5 GiB left across all four nodes at 20 % headroom
(docs/monitoring.md has the figures). Loki indexes only labels and keeps compressed chunks on
disk: one process in 512 MiB serves a home lab's few hundred MB a day for 30 days. Fluent Bit (C)
tails the container logs and the journal in tens of MiB per node.

Labels on every line (what a search selects by): `job` (pods | nodes), `node`, and for pods
`namespace`, `pod`, `container`, `app` (app.kubernetes.io/name) and `instance`
(app.kubernetes.io/instance, the Helm release). `log_selector(release)` is the LogQL selector
for one release's pods, built from the workloads the release declares.

Why our manifests and not the upstream charts: both are a handful of objects here, and as ours
they are validated against the Kubernetes schema in the tests (a chart's templates cannot be
rendered here).
"""

import yaml

from platform_assets.inventory import Inventory
from platform_assets.releases.spec import (
    MANAGED_BY,
    Chart,
    Container,
    Image,
    PlannedRelease,
    Release,
    Workload,
)

NAMESPACE = "logging"
LOGGING_NODE = {"picluster.io/logging": "true"}
STORAGE_CLASS = "local-path"

LOKI_IMAGE = Image("docker.io/grafana/loki", "3.7.3")
FLUENT_BIT_IMAGE = Image("cr.fluentbit.io/fluent/fluent-bit", "5.1.1")
LOKI = Container("loki", LOKI_IMAGE, 256, 512, "100m", "1")
FLUENT_BIT = Container("fluent-bit", FLUENT_BIT_IMAGE, 32, 96, "20m", "200m")

LOKI_PORT = 3100
RETENTION = "720h"  # 30 days
LOKI_VOLUME = "20Gi"  # ~30 days at a few hundred MB a day, compressed, with room to spare
LOKI_UID = 10001  # the image's user
# Fluent Bit keeps its read positions on the node, so a restarted pod resumes, not re-sends.
FLUENT_BIT_STATE = "/var/fluent-bit/state"
FLUENT_BIT_MEM_BUF = "16MB"  # per input: what it buffers before pausing the tail


def loki_config() -> dict:
    return {
        "auth_enabled": False,
        "analytics": {"reporting_enabled": False},
        "server": {"http_listen_port": LOKI_PORT, "grpc_listen_port": 9095, "log_level": "warn"},
        "common": {
            "path_prefix": "/var/loki",
            "replication_factor": 1,
            "ring": {"kvstore": {"store": "inmemory"}},
            "storage": {
                "filesystem": {
                    "chunks_directory": "/var/loki/chunks",
                    "rules_directory": "/var/loki/rules",
                }
            },
        },
        "schema_config": {
            "configs": [
                {
                    "from": "2026-01-01",
                    "store": "tsdb",
                    "object_store": "filesystem",
                    "schema": "v13",
                    "index": {"prefix": "index_", "period": "24h"},
                }
            ]
        },
        "limits_config": {
            "retention_period": RETENTION,
            "reject_old_samples": True,
            "reject_old_samples_max_age": "168h",
            "ingestion_rate_mb": 4,
            "ingestion_burst_size_mb": 8,
            "max_query_series": 5000,
        },
        # The compactor is what deletes chunks older than the retention period.
        "compactor": {
            "working_directory": "/var/loki/compactor",
            "retention_enabled": True,
            "retention_delete_delay": "2h",
            "delete_request_store": "filesystem",
        },
        "query_range": {
            "results_cache": {"cache": {"embedded_cache": {"enabled": True, "max_size_mb": 32}}}
        },
        "pattern_ingester": {"enabled": False},
    }


POD_LABELS = (
    "job=pods, node=${NODE_NAME}, namespace=$kubernetes['namespace_name'], "
    "pod=$kubernetes['pod_name'], container=$kubernetes['container_name'], "
    "app=$kubernetes['labels']['app.kubernetes.io/name'], "
    "instance=$kubernetes['labels']['app.kubernetes.io/instance']"
)


def fluent_bit_config() -> str:
    """Fluent Bit's classic configuration: container logs and the journal (K3s, sshd, the
    kernel) of the node it runs on, shipped to Loki with the labels above."""
    sections = [
        (
            "SERVICE",
            [
                ("Flush", "5"),
                ("Log_Level", "warn"),
                ("Parsers_File", "/fluent-bit/etc/parsers.conf"),
                ("HTTP_Server", "On"),
                ("HTTP_Listen", "0.0.0.0"),  # noqa: S104 (in the pod: the kubelet's probes)
                ("HTTP_Port", "2020"),
                ("Health_Check", "On"),
                ("storage.path", f"{FLUENT_BIT_STATE}/buffer"),
            ],
        ),
        (
            "INPUT",
            [
                ("Name", "tail"),
                ("Tag", "kube.*"),
                ("Path", "/var/log/containers/*.log"),
                ("multiline.parser", "cri"),
                ("DB", f"{FLUENT_BIT_STATE}/containers.db"),
                ("Mem_Buf_Limit", FLUENT_BIT_MEM_BUF),
                ("Skip_Long_Lines", "On"),
                ("Refresh_Interval", "10"),
                ("storage.type", "filesystem"),
            ],
        ),
        (
            "INPUT",
            [
                ("Name", "systemd"),
                ("Tag", "node.*"),
                ("Path", "/var/log/journal"),
                ("DB", f"{FLUENT_BIT_STATE}/journal.db"),
                ("Read_From_Tail", "On"),
                ("Strip_Underscores", "On"),
                ("Mem_Buf_Limit", FLUENT_BIT_MEM_BUF),
            ],
        ),
        (
            "FILTER",
            [
                ("Name", "kubernetes"),
                ("Match", "kube.*"),
                ("Merge_Log", "On"),
                ("Keep_Log", "Off"),
                ("K8S-Logging.Exclude", "On"),
                ("Labels", "On"),
                ("Annotations", "Off"),
            ],
        ),
        (
            "OUTPUT",
            [
                ("Name", "loki"),
                ("Match", "kube.*"),
                ("Host", f"loki.{NAMESPACE}.svc"),
                ("Port", str(LOKI_PORT)),
                ("labels", POD_LABELS),
                ("remove_keys", "kubernetes"),
                ("line_format", "json"),
                ("Retry_Limit", "False"),
            ],
        ),
        (
            "OUTPUT",
            [
                ("Name", "loki"),
                ("Match", "node.*"),
                ("Host", f"loki.{NAMESPACE}.svc"),
                ("Port", str(LOKI_PORT)),
                ("labels", "job=nodes, node=${NODE_NAME}, unit=$SYSTEMD_UNIT"),
                ("line_format", "json"),
                ("Retry_Limit", "False"),
            ],
        ),
    ]
    out = []
    for name, entries in sections:
        out.append(f"[{name}]")
        out += [f"    {key} {value}" for key, value in entries]
        out.append("")
    return "\n".join(out)


def log_selector(release: Release | PlannedRelease) -> str:
    """LogQL stream selector for the pods of one release: its namespace and the pods of the
    workloads it declares (a pod is named after its workload)."""
    names = "|".join(sorted(w.name for w in release.workloads))
    return f'{{job="pods", namespace="{release.namespace}", pod=~"({names})-.*"}}'


def _loki_manifests() -> list[dict]:
    labels = {"app.kubernetes.io/name": "loki"}
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "loki-config", "namespace": NAMESPACE},
        "data": {"loki.yaml": yaml.safe_dump(loki_config(), sort_keys=False)},
    }
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "loki", "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "replicas": 1,
            "serviceName": "loki",
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": dict(LOGGING_NODE),
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": LOKI_UID,
                        "runAsGroup": LOKI_UID,
                        "fsGroup": LOKI_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": LOKI.name,
                            "image": LOKI.image.ref,
                            "args": ["-config.file=/etc/loki/loki.yaml", "-target=all"],
                            # Go's GC keeps the heap under the container's limit.
                            "env": [
                                {
                                    "name": "GOMEMLIMIT",
                                    "value": f"{LOKI.memory_limit_mib * 9 // 10}MiB",
                                }
                            ],
                            "ports": [
                                {"name": "http", "containerPort": LOKI_PORT},
                                {"name": "grpc", "containerPort": 9095},
                            ],
                            "readinessProbe": {
                                "httpGet": {"path": "/ready", "port": LOKI_PORT},
                                "initialDelaySeconds": 15,
                            },
                            "resources": LOKI.resources(),
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [
                                {"name": "config", "mountPath": "/etc/loki"},
                                {"name": "data", "mountPath": "/var/loki"},
                                {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 (an emptyDir)
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "config", "configMap": {"name": "loki-config"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                    ],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": STORAGE_CLASS,
                        "resources": {"requests": {"storage": LOKI_VOLUME}},
                    },
                }
            ],
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "loki", "namespace": NAMESPACE, "labels": labels},
        "spec": {"selector": labels, "ports": [{"name": "http", "port": LOKI_PORT}]},
    }
    return [config, statefulset, service]


def _fluent_bit_manifests() -> list[dict]:
    labels = {"app.kubernetes.io/name": "fluent-bit"}
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "fluent-bit", "namespace": NAMESPACE},
    }
    # The kubernetes filter reads each pod's labels and namespace, nothing else.
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "piclusterops-fluent-bit", "labels": dict(MANAGED_BY)},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["pods", "namespaces"],
                "verbs": ["get", "list", "watch"],
            }
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "piclusterops-fluent-bit", "labels": dict(MANAGED_BY)},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "piclusterops-fluent-bit",
        },
        "subjects": [{"kind": "ServiceAccount", "name": "fluent-bit", "namespace": NAMESPACE}],
    }
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "fluent-bit-config", "namespace": NAMESPACE},
        "data": {"fluent-bit.conf": fluent_bit_config()},
    }

    def host(name: str, path: str, read_only: bool = True) -> tuple[dict, dict]:
        volume = {"name": name, "hostPath": {"path": path}}
        mount = {"name": name, "mountPath": path, "readOnly": read_only}
        return volume, mount

    mounts = [
        host("varlog", "/var/log"),
        # /var/log/containers links into K3s's pod log directory.
        host("podlogs", "/var/log/pods"),
        host("machine-id", "/etc/machine-id"),
        host("state", FLUENT_BIT_STATE, read_only=False),
    ]
    mounts[-1][0]["hostPath"]["type"] = "DirectoryOrCreate"
    daemonset = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "fluent-bit", "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": "fluent-bit",
                    # Every node, the server included (its taint, if any, too).
                    "tolerations": [{"operator": "Exists"}],
                    "priorityClassName": "system-node-critical",
                    "containers": [
                        {
                            "name": FLUENT_BIT.name,
                            "image": FLUENT_BIT.image.ref,
                            "args": ["--config=/fluent-bit/etc/conf/fluent-bit.conf"],
                            "env": [
                                {
                                    "name": "NODE_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}},
                                }
                            ],
                            "ports": [{"name": "http", "containerPort": 2020}],
                            "livenessProbe": {"httpGet": {"path": "/", "port": 2020}},
                            "readinessProbe": {"httpGet": {"path": "/api/v1/health", "port": 2020}},
                            "resources": FLUENT_BIT.resources(),
                            # Root only to read the root-owned log files; nothing else.
                            "securityContext": {
                                "runAsUser": 0,
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"], "add": ["DAC_READ_SEARCH"]},
                            },
                            "volumeMounts": [
                                {
                                    "name": "config",
                                    "mountPath": "/fluent-bit/etc/conf",
                                    "readOnly": True,
                                },
                                *(m for _, m in mounts),
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "config", "configMap": {"name": "fluent-bit-config"}},
                        *(v for v, _ in mounts),
                    ],
                },
            },
        },
    }
    return [account, role, binding, config, daemonset]


def logging(inv: Inventory) -> Release:
    return Release(
        name="logging",
        namespace=NAMESPACE,
        description=f"Central logs: Loki {LOKI_IMAGE.tag} (single binary, {LOKI_VOLUME} on "
        "local-path, 30 days kept) and Fluent Bit on every node (container logs and the "
        "journal), searchable per release in Grafana.",
        charts=(
            Chart(
                name="logging",
                manifests=(*_loki_manifests(), *_fluent_bit_manifests()),
                owns_data=True,  # 30 days of logs on Loki's volume
            ),
        ),
        workloads=(
            Workload("StatefulSet", "loki", (LOKI,), node_selector=LOGGING_NODE),
            Workload("DaemonSet", "fluent-bit", (FLUENT_BIT,)),
        ),
    )
