"""The hand-over of the platform's Dagster from the laptop to the cluster it manages.

`build_defs()` registers `dagster_handover` (group `handover`), the check after the `dagster`
release that the cluster's Dagster can own the schedules and sensors. Its own group, so
`apply_releases` (the `releases` group) never runs it: it passes only once the image is pushed
and the release is up, and it is asked for on purpose, by the runbook.
"""

import dagster as dg


def build_defs() -> dg.Definitions:
    from platform_assets.handover.assets import dagster_handover

    return dg.Definitions(assets=[dagster_handover])
