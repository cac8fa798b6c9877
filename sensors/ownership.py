"""One owner for each schedule and sensor: the laptop's Dagster or the cluster's, never both.

`PICLUSTER_SCHEDULES_OWNER` (laptop | cluster, default laptop) names the owner; a deployment
knows which one it is by running in a pod or not. The owner's schedules and sensors start
RUNNING, the other's STOPPED, and both UIs show the owner as metadata. A status someone set by
hand in a UI overrides the default (Dagster keeps it in the instance): the hand-over runbook
(docs/dagster-on-cluster.md) says when to reset it.
"""

import warnings

import dagster as dg

from resources.settings import automation_owner, owns_automation, this_deployment


def sensor_status() -> dg.DefaultSensorStatus:
    """The default status of every sensor, in this deployment."""
    return dg.DefaultSensorStatus.RUNNING if owns_automation() else dg.DefaultSensorStatus.STOPPED


def schedule_status() -> dg.DefaultScheduleStatus:
    """The default status of every schedule, in this deployment."""
    return (
        dg.DefaultScheduleStatus.RUNNING if owns_automation() else dg.DefaultScheduleStatus.STOPPED
    )


def owner_metadata() -> dict[str, str]:
    owner = automation_owner()
    here = this_deployment()
    return {
        "owner": owner,
        "this_deployment": here,
        "runs_here": "yes" if owner == here else f"no: the {owner}'s Dagster runs it",
    }


def with_owner(definitions: list) -> list:
    """Sensors and schedules with who owns them in their metadata (shown in the UI)."""
    with warnings.catch_warnings():
        # Dagster's own `with_attributes` passes the sensor's (unset) `owners` on to a new
        # SensorDefinition, which warns that the parameter is beta in every CLI call: noise
        # about a parameter this project never sets.
        warnings.simplefilter("ignore", dg.BetaWarning)
        return [d.with_attributes(metadata={**d.metadata, **owner_metadata()}) for d in definitions]
