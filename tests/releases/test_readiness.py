"""release_ready's verdict, as a table of facts (the objects the API would return)."""

import pytest

from platform_assets.releases.readiness import ChartFacts, WorkloadFacts, chart_state, verdict

HEX = "A" * 70  # the controller hashes with sha256 and prints upper-case hex


def helmchart(*conditions, job="helm-install-trino"):
    return {
        "metadata": {"name": "trino"},
        "status": {
            "jobName": job,
            "conditions": [
                {"type": t, "status": "True", "reason": r, "message": m} for t, r, m in conditions
            ],
        },
    }


def job(condition="Complete", config_hash="SHA256=" + HEX):
    conditions = [{"type": condition, "status": "True"}] if condition else []
    return {
        "metadata": {
            "name": "helm-install-trino",
        },
        "spec": {
            "template": {
                "metadata": {"annotations": {"helmcharts.helm.cattle.io/configHash": config_hash}}
            },
        },
        "status": {"conditions": conditions},
    }


def record(version, status="deployed", config_hash=HEX[:63]):
    labels = {"owner": "helm", "name": "trino", "version": str(version), "status": status}
    if config_hash:
        labels["helmcharts.helm.cattle.io/configHash"] = config_hash
    return {"metadata": {"labels": labels}}


CASES = [
    (
        "deployed, hash matches",
        helmchart(),
        job(),
        (record(1, "superseded"), record(2)),
        True,
        "deployed v2 by job helm-install-trino",
    ),
    ("never applied", None, None, (), False, "HelmChart not found in kube-system (never applied)"),
    (
        "Failed condition",
        helmchart(("Failed", "Job failed", "back-off limit reached")),
        job("Failed"),
        (),
        False,
        "Failed: Job failed back-off limit reached (job helm-install-trino)",
    ),
    ("job not created", helmchart(), None, (), False, "job helm-install-trino not created yet"),
    ("job running", helmchart(), job(None), (), False, "job helm-install-trino still running"),
    (
        "job failed, no condition yet",
        helmchart(),
        job("Failed"),
        (),
        False,
        "job helm-install-trino failed",
    ),
    (
        "no release record",
        helmchart(),
        job(),
        (),
        False,
        "job helm-install-trino completed but there is no Helm release record for trino",
    ),
    (
        "release failed",
        helmchart(),
        job(),
        (record(3, "failed"),),
        False,
        "Helm release trino v3 is failed (job helm-install-trino)",
    ),
    (
        "older values live",
        helmchart(),
        job(),
        (record(2, config_hash="SHA256=old"),),
        False,
        "Helm release trino v2 was installed from other values (configHash SHA256=old, job "
        f"helm-install-trino has {HEX[:63]}): the applied spec is not live yet",
    ),
]


@pytest.mark.parametrize(
    ("hc", "j", "records", "ok", "state"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_chart_state(hc, j, records, ok, state):
    assert chart_state(ChartFacts("trino", hc, j, records)) == (ok, state)


def test_a_failed_chart_names_the_release_the_job_and_its_last_log_lines():
    facts = ChartFacts(
        "trino", helmchart(("Failed", "Job failed", "")), job("Failed"), (), "Error: UPGRADE FAILED"
    )
    v = verdict("trino", [facts], [])
    assert not v.passed
    (failure,) = v.failures
    assert failure.startswith("trino: HelmChart trino: Failed: Job failed (job helm-install-trino)")
    assert failure.endswith("last lines of job helm-install-trino:\nError: UPGRADE FAILED")


WORKLOADS = [
    (
        WorkloadFacts("Deployment", "trino-worker", False, False, "missing"),
        "trino: Deployment trino-worker does not exist",
    ),
    (
        WorkloadFacts("Deployment", "trino-worker", True, False, "0/1 replicas available"),
        "trino: Deployment trino-worker is not ready: 0/1 replicas available",
    ),
]


@pytest.mark.parametrize(("workload", "failure"), WORKLOADS)
def test_a_missing_or_unready_workload_fails_with_its_name(workload, failure):
    ok = ChartFacts("trino", helmchart(), job(), (record(1),))
    v = verdict("trino", [ok], [workload])
    assert not v.passed and v.failures == (failure,)


def test_ready_when_every_chart_and_workload_is():
    ok = ChartFacts("trino", helmchart(), job(), (record(1),))
    ready = WorkloadFacts("Deployment", "trino-worker", True, True, "1/1")
    v = verdict("trino", [ok], [ready])
    assert v.passed and v.failures == ()
