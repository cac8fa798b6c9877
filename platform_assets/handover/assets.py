"""`dagster_handover`: the step after the `dagster` release that says whether the cluster's own
Dagster can take over from the laptop.

It asks the cluster's webserver (GraphQL over HTTPS, its certificate verified against the LAN CA
for its Service's name) whether it answers, has loaded the code location
`piclusterops` without a load error, runs every schedule and sensor this code defines (RUNNING,
owned by the cluster) and has its daemons' heartbeats. It materializes only when all hold;
otherwise it fails naming what is missing. It changes nothing: turning the laptop's copies off
is the runbook's next step (docs/dagster-on-cluster.md).
"""

import time

import dagster as dg

from platform_assets.handover import status
from platform_assets.releases.dagster import (
    CODE_LOCATION,
    LAN_CA_FILE,
    NAMESPACE,
    WEBSERVER_PORT,
    WEBSERVER_SERVICE,
)
from resources.settings import PROJECT_ROOT, running_in_pod

GROUP = "handover"
# From the laptop: `kubectl -n dagster port-forward svc/dagster-dagster-webserver 3100:443`
# (3100, not 3000: the laptop's own Dagster UI is on 3000).
PORT_FORWARD_URL = "https://127.0.0.1:3100"
# From a pod (the cluster's Dagster checking itself): the chart's Service.
IN_CLUSTER_URL = f"https://{WEBSERVER_SERVICE}.{NAMESPACE}.svc:{WEBSERVER_PORT}"
# The name the webserver's certificate is verified for, whichever address the URL dials (a
# port-forward's 127.0.0.1 included): its certificate names its Service (dagster.py).
SERVER_NAME = f"{WEBSERVER_SERVICE}.{NAMESPACE}.svc"
# On a laptop: the LAN CA's certificate exported as docs/dagster-on-cluster.md says.
LAPTOP_CA_FILE = PROJECT_ROOT / ".picluster" / "picluster-ca.crt"
POLL_S = 5.0


class HandoverConfig(dg.Config):
    url: str = ""
    """The cluster's Dagster webserver (https). Empty: the port-forward on 127.0.0.1:3100 from
    a laptop, the webserver's Service from a pod."""
    ca_file: str = ""
    """The LAN CA's certificate the webserver's is verified against. Empty: the run pod's
    mount of it in a pod, `.picluster/picluster-ca.crt` of the checkout on a laptop."""
    wait_s: float = 180.0
    """How long to keep asking while something is missing (the daemon and the code location
    take a minute or two after the release is ready)."""
    timeout_s: float = 15.0
    """Per request."""


def default_url() -> str:
    return IN_CLUSTER_URL if running_in_pod() else PORT_FORWARD_URL


def default_ca_file() -> str:
    return LAN_CA_FILE if running_in_pod() else str(LAPTOP_CA_FILE)


def defined_automation() -> tuple[set[str], set[str]]:
    """Names of the schedules and sensors this code location defines: the cluster's, built
    from the same code (the image of this version), must run every one."""
    import definitions  # the code location's module (workspace.yaml), loaded already

    return (
        {s.name for s in definitions.defs.schedules or []},
        {s.name for s in definitions.defs.sensors or []},
    )


@dg.asset(
    group_name=GROUP,
    kinds={"dagster", "kubernetes"},
    deps=[dg.AssetKey("dagster")],
    # Not data: the blast radius lists it under no heading (platform_assets/blast_radius.py).
    tags={"picluster/kind": "handover"},
    # Re-asking is harmless, but a failure means a person has something to look at.
    op_tags={"dagster/max_retries": "0"},
)
def dagster_handover(context: dg.AssetExecutionContext, config: HandoverConfig):
    """The cluster's Dagster answers, has loaded the `piclusterops` code location, and runs
    every schedule and sensor of it (RUNNING, owner `cluster`) with its daemons alive: the
    laptop's copies can be turned off (`PICLUSTER_SCHEDULES_OWNER=cluster`, see
    docs/dagster-on-cluster.md). Fails naming what is missing; changes nothing."""
    url = config.url or default_url()
    ca_file = config.ca_file or default_ca_file()
    try:
        lan_ca = status.lan_ca_context(ca_file)
    except status.LanCaUnreadable as exc:
        raise dg.Failure(
            description=f"{exc}: config `ca_file`, or export it there (docs/dagster-on-cluster.md)"
        ) from None
    schedules, sensors = defined_automation()
    deadline = time.monotonic() + config.wait_s
    while True:
        try:
            answer = status.ask(url, config.timeout_s, lan_ca, SERVER_NAME)
            found = status.verdict(answer, CODE_LOCATION, schedules, sensors)
        except status.DagsterUnreachable as exc:
            found = status.Verdict(problems=[str(exc)])
        if found.passed or time.monotonic() >= deadline:
            break
        context.log.info(f"not yet: {'; '.join(found.problems)}")
        time.sleep(POLL_S)
    metadata = {
        "url": url,
        "verified_as": SERVER_NAME,
        "code_location": CODE_LOCATION,
        "automation": dg.MetadataValue.md(status.markdown(found)),
    }
    if not found.passed:
        raise dg.Failure(
            description=f"the cluster's Dagster at {url} cannot take over yet:\n"
            + "\n".join(f"- {p}" for p in found.problems),
            metadata=metadata,
        )
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "dagster/row_count": len(found.instigators),
            "daemons": ", ".join(sorted(found.daemons)),
        }
    )
