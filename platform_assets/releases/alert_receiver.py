"""Where Alertmanager sends the alerts: a webhook, mail, or both, chosen in settings, and the
routing a four-node home lab wants (critical now and every 4 h, warnings once a day, a warning
held back while a critical of the same alert and node fires).

`PICLUSTER_ALERT_RECEIVERS` lists the kinds (`webhook`, `email`, comma separated). Unset, alerts
reach no one: Alertmanager still receives them (its UI and API list them) but routes everything
to the `null` receiver, and the monitoring release's description says so. That is the local
profile's and CI's case, and refusing it would stop every plan.

What is secret never becomes a setting or a Helm value: the webhook's URL (ntfy topics, chat
bridges and most hooks carry their token in it) and the SMTP password are keys of the
`alertmanager-receiver` Secret, which a person creates in `monitoring` (docs/monitoring.md), and
Alertmanager reads them as files (`url_file`, `auth_password_file`).
"""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from platform_assets.releases.spec import AdminSecret
from resources.settings import PREFIX, SettingsError, _Reader

KINDS = ("webhook", "email")
SECRET = "alertmanager-receiver"  # noqa: S105 (a Secret's name)
WEBHOOK_URL_KEY = "webhook-url"
SMTP_PASSWORD_KEY = "smtp-password"  # noqa: S105 (a key's name)
# Where the operator mounts each Secret listed in alertmanagerSpec.secrets.
SECRET_DIR = f"/etc/alertmanager/secrets/{SECRET}"
NULL = "null"
PEOPLE = "people"
# One notification per alert and node (node: kube-state-metrics' label; instance: a scrape's).
GROUP_BY = ["alertname", "node", "instance"]
# The chart's own always-firing alerts, meant for a dead man's switch and for inhibition only.
SILENT = ['alertname =~ "Watchdog|InfoInhibitor"']

_SMARTHOST = re.compile(r"[A-Za-z0-9.-]+:[0-9]{1,5}")
_ADDRESS = re.compile(r"[^@\s,]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,63}")


@dataclass(frozen=True)
class Email:
    to: str
    sender: str
    smarthost: str  # host:port of the SMTP server (587 STARTTLS, 465 TLS)
    username: str  # "" when the server takes mail without a login


@dataclass(frozen=True)
class AlertReceiver:
    webhook: bool
    email: Email | None


def load_alert_receiver(environ: Mapping[str, str] | None = None) -> AlertReceiver | None:
    """The receiver the settings describe, or None when `PICLUSTER_ALERT_RECEIVERS` is unset."""
    read = _Reader(os.environ if environ is None else environ)
    listed = read.raw("ALERT_RECEIVERS")
    if listed is None:
        return None
    kinds = [k.strip() for k in listed.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise SettingsError(
            f"{PREFIX}ALERT_RECEIVERS={listed!r} is not valid; expected one or more of "
            f"{', '.join(KINDS)}, comma separated (or unset: alerts reach no one)."
        )
    email = None
    if "email" in kinds:
        smarthost = read.text("ALERT_SMTP_SMARTHOST", expected="the SMTP server as host:port")
        if not _SMARTHOST.fullmatch(smarthost):
            raise SettingsError(
                f"{PREFIX}ALERT_SMTP_SMARTHOST={smarthost!r} is not valid; expected host:port, "
                "e.g. smtp.example.org:587."
            )
        email = Email(
            to=read.matching("ALERT_EMAIL_TO", _ADDRESS, expected="a mail address"),
            sender=read.matching("ALERT_EMAIL_FROM", _ADDRESS, expected="a mail address"),
            smarthost=smarthost,
            username=read.text("ALERT_SMTP_USERNAME", ""),
        )
    return AlertReceiver(webhook="webhook" in kinds, email=email)


def secret_keys(receiver: AlertReceiver | None) -> tuple[str, ...]:
    """The keys the `alertmanager-receiver` Secret must hold; () when it is not needed."""
    if receiver is None:
        return ()
    keys = [WEBHOOK_URL_KEY] if receiver.webhook else []
    if receiver.email and receiver.email.username:
        keys.append(SMTP_PASSWORD_KEY)
    return tuple(keys)


def admin_secrets(receiver: AlertReceiver | None, namespace: str) -> tuple[AdminSecret, ...]:
    """The Secret the release must find before it plans or applies; () when none is needed."""
    keys = secret_keys(receiver)
    if not keys:
        return ()
    what = {WEBHOOK_URL_KEY: "the webhook URL", SMTP_PASSWORD_KEY: "the SMTP password"}
    needs = {
        WEBHOOK_URL_KEY: f"{PREFIX}ALERT_RECEIVERS=webhook",
        SMTP_PASSWORD_KEY: f"mail with {PREFIX}ALERT_SMTP_USERNAME",
    }
    return (
        AdminSecret(
            name=SECRET,
            namespace=namespace,
            keys=tuple((k, what[k]) for k in keys),
            needed_by=" and ".join(needs[k] for k in keys),
            guide="docs/monitoring.md, 'Where alerts go'",
        ),
    )


def _people(receiver: AlertReceiver) -> dict:
    out: dict = {"name": PEOPLE}
    if receiver.webhook:
        out["webhook_configs"] = [
            {"url_file": f"{SECRET_DIR}/{WEBHOOK_URL_KEY}", "send_resolved": True}
        ]
    if receiver.email:
        mail = receiver.email
        config = {
            "to": mail.to,
            "from": mail.sender,
            "smarthost": mail.smarthost,
            "require_tls": True,
            "send_resolved": True,
        }
        if mail.username:
            config |= {
                "auth_username": mail.username,
                "auth_password_file": f"{SECRET_DIR}/{SMTP_PASSWORD_KEY}",
            }
        out["email_configs"] = [config]
    return out


def alertmanager_config(receiver: AlertReceiver | None) -> dict:
    """alertmanager.yaml, as the chart's `alertmanager.config`. Every key the chart's default
    sets is set here (Helm merges maps, replaces lists), so this is the whole file."""
    receivers: list[dict] = [{"name": NULL}]
    routes: list[dict] = [{"receiver": NULL, "matchers": list(SILENT)}]
    if receiver is not None:
        receivers.append(_people(receiver))
        routes += [
            {
                "receiver": PEOPLE,
                "matchers": ['severity = "critical"'],
                "group_wait": "10s",
                "repeat_interval": "4h",
            },
            {"receiver": PEOPLE, "matchers": ['severity = "warning"'], "repeat_interval": "24h"},
        ]
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": NULL,  # info and unlabelled alerts: the UI only
            "group_by": list(GROUP_BY),
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "12h",
            "routes": routes,
        },
        "inhibit_rules": [
            {
                "source_matchers": ['severity = "critical"'],
                "target_matchers": ['severity =~ "warning|info"'],
                "equal": ["alertname", "namespace", *GROUP_BY[1:]],
            }
        ],
        "receivers": receivers,
        "templates": [],
    }


def describe(receiver: AlertReceiver | None) -> str:
    """A sentence for the release's description: where alerts go."""
    if receiver is None:
        return (
            "Alerts reach no one: PICLUSTER_ALERT_RECEIVERS is not set, so Alertmanager routes "
            "them to its null receiver."
        )
    kinds = (["a webhook"] if receiver.webhook else []) + (
        [f"mail to {receiver.email.to}"] if receiver.email else []
    )
    keys = secret_keys(receiver)
    held = f" (Secret {SECRET}: {', '.join(keys)})" if keys else ""
    return f"Critical and warning alerts go to {' and '.join(kinds)}{held}."
