"""K3s's helm-controller against the real API: a HelmChart becomes a `helm-install-<name>` Job,
and KWOK completes its pod. No chart is installed: the klipper-helm image never runs here (no
container runs at all) and no chart repository is reachable, so the chart's own templates are
not rendered in any test."""

import pytest

from tests.harness.kube import wait_until

pytestmark = pytest.mark.service


def test_a_helmchart_becomes_an_install_job_whose_pod_completes(kube, namespace):
    chart = {
        "apiVersion": "helm.cattle.io/v1",
        "kind": "HelmChart",
        "metadata": {"name": "metallb", "namespace": namespace},
        "spec": {
            "chart": "metallb",
            "repo": "https://metallb.github.io/metallb",
            "version": "0.15.2",
            "targetNamespace": namespace,
            "valuesContent": "speaker:\n  frr:\n    enabled: false\n",
        },
    }
    kube.apply(chart, field_manager="piclusterops-tests")
    job = wait_until(
        lambda: kube.get("batch/v1", "Job", "helm-install-metallb", namespace),
        60,
        "the helm-controller's install Job",
    )
    assert job["metadata"]["ownerReferences"][0]["kind"] == "HelmChart"
    done = wait_until(
        lambda: (
            (kube.get("batch/v1", "Job", "helm-install-metallb", namespace) or {})
            .get("status", {})
            .get("succeeded")
        ),
        60,
        "the install Job succeeded (KWOK completes its pod)",
    )
    assert done == 1
    status = kube.get("helm.cattle.io/v1", "HelmChart", "metallb", namespace)["status"]
    assert status["jobName"] == "helm-install-metallb"
