"""A run never disrupts the node it runs on: per-run pod placement from run tags.

An infrastructure run that cordons, drains, reboots or patches node X carries
`run_tags(touches=["X"])`: the `dagster-k8s/config` tag K8sRunLauncher reads, with a required
node anti-affinity to X (the pod may land anywhere but X) and the infrastructure tag the run
queue limits to one at a time. `disruption_order` puts the node hosting the Dagster daemon and
webserver last, so the run doing the work is never on a node it takes down (the weekly
patches use it).
"""

import json
from collections.abc import Iterable, Mapping

from platform_assets.releases.dagster import DAGSTER_NODE, INFRASTRUCTURE_TAG

K8S_CONFIG_TAG = "dagster-k8s/config"
HOSTNAME_LABEL = "kubernetes.io/hostname"
TOUCHES_TAG = "picluster/touches"
MAX_RETRIES_TAG = "dagster/max_retries"


def infrastructure_job_tags() -> dict[str, str]:
    """Tags of every job that changes the cluster (apply_cluster, apply_releases,
    rollback_release, nightly_backups): the run queue lets one of them run at a time, and none
    is retried automatically (a reboot or a drain that died halfway is for a person to look
    at). The node a run touches is known only at launch: add `run_tags(touches=[...])` then."""
    return {INFRASTRUCTURE_TAG: "true", MAX_RETRIES_TAG: "0"}


def off_nodes_affinity(nodes: Iterable[str]) -> dict:
    """Pod affinity that keeps a pod off these nodes (by their hostname label)."""
    names = sorted(set(nodes))
    if not names:
        return {}
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": HOSTNAME_LABEL, "operator": "NotIn", "values": names}
                        ]
                    }
                ]
            }
        }
    }


def run_tags(touches: Iterable[str]) -> dict[str, str]:
    """Tags for an infrastructure run that disrupts the nodes `touches`."""
    names = sorted(set(touches))
    if not names:
        raise ValueError("an infrastructure run names the nodes it touches")
    return {
        **infrastructure_job_tags(),
        TOUCHES_TAG: ",".join(names),
        # Run tags are strings; K8sRunLauncher parses this one as JSON.
        K8S_CONFIG_TAG: json.dumps({"pod_spec_config": {"affinity": off_nodes_affinity(names)}}),
    }


def disruption_order(nodes: Iterable[str], labels: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Nodes in the order to disrupt them, one at a time: the ones hosting Dagster last.

    `labels` is {node: its labels}; a node is Dagster's when its labels match the dagster
    release's node selector. Otherwise the given order is kept."""
    ordered = list(dict.fromkeys(nodes))

    def hosts_dagster(node: str) -> bool:
        own = labels.get(node, {})
        return all(own.get(k) == v for k, v in DAGSTER_NODE.items())

    return [n for n in ordered if not hosts_dagster(n)] + [n for n in ordered if hosts_dagster(n)]
