"""What the cluster's Dagster says about itself, over its GraphQL endpoint, and the verdict.

One query asks the webserver for its code locations (loaded, or the load error), their
schedules and sensors (status and the owner metadata `sensors/ownership.py` puts on them) and
the daemons' heartbeats. `verdict` is pure: the answer and what this code location defines in,
the problems out, each naming what is missing.

HTTPS with the standard library: dagster-graphql's client (installed with the webserver, not a
dependency of ours) asks only about runs and reloads, not about locations, schedules or
daemons, and its transport would bring nothing the query needs. The webserver's certificate is
verified against the LAN CA alone, for the name of the webserver's Service whatever address is
dialled: through a port-forward that is 127.0.0.1, and the server is still the Service.
"""

import http.client
import json
import ssl
import urllib.parse
from dataclasses import dataclass, field

# Fragments on the metadata interface: the owner entries are text.
QUERY = """
query PiclusteropsHandover {
  workspaceOrError {
    __typename
    ... on PythonError { message }
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message errorChain { error { message } } }
          ... on RepositoryLocation {
            repositories {
              name
              schedules {
                name
                scheduleState { status }
                metadataEntries { label ... on TextMetadataEntry { text } }
              }
              sensors {
                name
                sensorState { status }
                metadataEntries { label ... on TextMetadataEntry { text } }
              }
            }
          }
        }
      }
    }
  }
  instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } }
}
"""


class DagsterUnreachable(RuntimeError):
    """The webserver did not answer the query (down, wrong address, not Dagster, or not the
    server its certificate should say)."""


class LanCaUnreadable(RuntimeError):
    """The LAN CA's certificate to verify the webserver against could not be read."""


def lan_ca_context(ca_file: str) -> ssl.SSLContext:
    """A client TLS context trusting only the LAN CA's certificate in `ca_file`."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except OSError as exc:  # ssl.SSLError included: not a certificate
        raise LanCaUnreadable(
            f"cannot read the LAN CA's certificate {ca_file}: {exc.strerror or exc}"
        ) from None


class _ServiceConnection(http.client.HTTPSConnection):
    """HTTPS to the address dialled, the certificate checked for `server_name`."""

    def __init__(self, host, port, *, server_name: str, context: ssl.SSLContext, timeout: float):
        super().__init__(host, port, timeout=timeout, context=context)
        self._tls, self._server_name = context, server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)  # the TCP connection
        self.sock = self._tls.wrap_socket(self.sock, server_hostname=self._server_name)


def post_json(
    url: str, payload: dict, context: ssl.SSLContext, server_name: str, timeout_s: float
) -> dict:
    """POSTs `payload` to the https `url`; returns the JSON answer."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise DagsterUnreachable(
            f"{url!r} is not an https URL of a Dagster webserver (it serves HTTPS only)"
        )
    connection = _ServiceConnection(
        parts.hostname,
        parts.port or 443,
        server_name=server_name,
        context=context,
        timeout=timeout_s,
    )
    try:
        connection.request(
            "POST",
            parts.path or "/",
            body=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        response = connection.getresponse()
        body = response.read()
        if response.status >= 400:
            raise DagsterUnreachable(f"{url} answered HTTP {response.status} {response.reason}")
        return json.loads(body)
    except (OSError, http.client.HTTPException, json.JSONDecodeError) as exc:
        raise DagsterUnreachable(
            f"the cluster's Dagster at {url} did not answer: {exc} (is the port-forward "
            "to svc/dagster-dagster-webserver running? docs/dagster-on-cluster.md)"
        ) from None
    finally:
        connection.close()


def ask(url: str, timeout_s: float, context: ssl.SSLContext, server_name: str) -> dict:
    """POSTs the query to `<url>/graphql`; returns its `data`. `context` and `server_name`:
    what the webserver's certificate is verified against, and for which name."""
    endpoint = url.rstrip("/") + "/graphql"
    body = post_json(endpoint, {"query": QUERY}, context, server_name, timeout_s)
    if body.get("errors") or not body.get("data"):
        messages = "; ".join(e.get("message", "?") for e in body.get("errors") or [])
        raise DagsterUnreachable(f"{endpoint} refused the query: {messages or 'no data'}")
    return body["data"]


@dataclass(frozen=True)
class Instigator:
    kind: str  # schedule | sensor
    name: str
    status: str  # RUNNING | STOPPED | DECLARED_IN_CODE
    owner: str  # the `owner` metadata ("" when the definition has none)


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    instigators: list[Instigator] = field(default_factory=list)
    daemons: dict[str, bool] = field(default_factory=dict)  # required daemon -> healthy

    @property
    def passed(self) -> bool:
        return not self.problems


def _instigators(location: dict) -> list[Instigator]:
    out = []
    for repo in location.get("repositories") or []:
        for kind, state in (("schedule", "scheduleState"), ("sensor", "sensorState")):
            for item in repo.get(f"{kind}s") or []:
                meta = {e.get("label"): e.get("text", "") for e in item.get("metadataEntries", [])}
                out.append(
                    Instigator(kind, item["name"], item[state]["status"], meta.get("owner", ""))
                )
    return out


def _load_error(error: dict) -> str:
    """The innermost cause: the outer error only says that loading the definitions failed."""
    chain = [link.get("error") or {} for link in error.get("errorChain") or []]
    message = (chain[-1] if chain else error).get("message") or "?"
    return " ".join(message.split())[:1000]


def verdict(
    data: dict, location: str, schedules: set[str], sensors: set[str], owner: str = "cluster"
) -> Verdict:
    """Whether the Dagster that answered `data` runs `location` with every schedule and sensor
    RUNNING and owned by `owner`, and its required daemons are alive. `schedules` and `sensors`
    are what this code location defines: the cluster's must have them all."""
    out = Verdict()
    health = ((data.get("instance") or {}).get("daemonHealth") or {}).get("allDaemonStatuses")
    for daemon in health or []:
        if daemon.get("required"):
            out.daemons[daemon["daemonType"]] = bool(daemon.get("healthy"))
    dead = sorted(d for d, healthy in out.daemons.items() if not healthy)
    if dead:
        out.problems.append(
            f"daemons not running (no recent heartbeat): {', '.join(dead)}; is the "
            "dagster-daemon Deployment up?"
        )
    workspace = data.get("workspaceOrError") or {}
    if workspace.get("__typename") != "Workspace":
        out.problems.append(f"the workspace did not load: {workspace.get('message', workspace)}")
        return out
    entries = {e["name"]: e for e in workspace.get("locationEntries") or []}
    entry = entries.get(location)
    if entry is None:
        out.problems.append(
            f"no code location {location!r} (it has: {', '.join(sorted(entries)) or 'none'})"
        )
        return out
    loaded = entry.get("locationOrLoadError") or {}
    if loaded.get("__typename") == "PythonError":
        out.problems.append(f"code location {location!r} failed to load: {_load_error(loaded)}")
        return out
    if entry.get("loadStatus") != "LOADED" or loaded.get("__typename") != "RepositoryLocation":
        out.problems.append(f"code location {location!r} is still {entry.get('loadStatus')}")
        return out
    out.instigators = sorted(_instigators(loaded), key=lambda i: (i.kind, i.name))
    present = {(i.kind, i.name) for i in out.instigators}
    for kind, names in (("schedule", schedules), ("sensor", sensors)):
        missing = sorted(n for n in names if (kind, n) not in present)
        if missing:
            out.problems.append(
                f"{kind}s missing from the cluster's {location!r} (an older image?): "
                + ", ".join(missing)
            )
    for i in out.instigators:
        if i.status != "RUNNING":
            out.problems.append(f"{i.kind} {i.name} is {i.status}, not RUNNING")
        if i.owner != owner:
            out.problems.append(
                f"{i.kind} {i.name} is owned by {i.owner or 'nobody'!r}, not the {owner}: "
                f"PICLUSTER_SCHEDULES_OWNER in ConfigMap piclusterops-env"
            )
    return out


def markdown(v: Verdict) -> str:
    rows = ["| kind | name | status | owner |", "| --- | --- | --- | --- |"]
    rows += [f"| {i.kind} | {i.name} | {i.status} | {i.owner} |" for i in v.instigators]
    daemons = ", ".join(f"{d} {'up' if ok else 'DOWN'}" for d, ok in sorted(v.daemons.items()))
    return "\n".join(rows) + f"\n\nDaemons: {daemons or 'none reported'}"
