"""The jobs that change the cluster carry the run tags run_placement defines: the run queue's
infrastructure limit (one at a time, deploy values) and no automatic retry."""

import dagster as dg
import pytest

from platform_assets.assets import apply_cluster
from platform_assets.releases.assets import apply_releases, rollback_release
from platform_assets.releases.dagster import INFRASTRUCTURE_TAG, chart_values
from platform_assets.run_placement import MAX_RETRIES_TAG, TOUCHES_TAG, run_tags
from sensors.backups import backup_freshness_job, nightly_backups_job

INFRASTRUCTURE_JOBS = [apply_cluster, apply_releases, rollback_release, nightly_backups_job]


@pytest.mark.parametrize("job", INFRASTRUCTURE_JOBS, ids=lambda j: j.name)
def test_every_infrastructure_job_is_limited_to_one_run_and_never_retried(job):
    assert job.tags[INFRASTRUCTURE_TAG] == "true"
    assert job.tags[MAX_RETRIES_TAG] == "0"


def test_the_run_queue_limits_exactly_that_tag():
    queue = chart_values("s3:8333", "pg")["dagsterDaemon"]["runCoordinator"]["config"]
    limits = queue["queuedRunCoordinator"]["tagConcurrencyLimits"]
    assert limits == [{"key": INFRASTRUCTURE_TAG, "limit": 1}]


def test_the_nightly_backups_keep_their_own_key_beside_the_infrastructure_tag():
    assert nightly_backups_job.tags["dagster/concurrency_key"] == "backups"
    # The hourly freshness checks only read the object store: never queued behind an apply.
    assert INFRASTRUCTURE_TAG not in backup_freshness_job.tags


def test_a_run_for_a_node_gets_the_jobs_tags_and_its_placement(tmp_path):
    """The node is known at launch: the run's tags add it to the job's (as the UI's launchpad
    or a sensor's RunRequest does)."""
    import definitions  # the code location itself, local profile

    job = definitions.defs.resolve_job_def("apply_cluster")
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        run = instance.create_run_for_job(job, tags=run_tags(["pi-agent-1"]))
    assert run.tags[INFRASTRUCTURE_TAG] == "true"
    assert run.tags[MAX_RETRIES_TAG] == "0"
    assert run.tags[TOUCHES_TAG] == "pi-agent-1"
