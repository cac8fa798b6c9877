"""Where alerts go: the receiver settings as a table, the rendered alertmanager.yaml checked and
routed by the real `amtool` of the release's Alertmanager (v0.32.1), and a real Alertmanager on
loopback that sends a critical alert to a webhook whose URL it read from the Secret's file, and
holds back the warning of the same alert and node.

Built by tests/harness/alertmanager_dist.py (`scripts/bootstrap.sh test`). Mail is checked by
amtool's config check only: no SMTP server runs here (the release requires TLS of it).
"""

import http.server
import json
import subprocess
import threading
import time
import urllib.request

import pytest
import yaml

from platform_assets.releases import alert_receiver, monitoring
from platform_assets.releases.alert_receiver import (
    SECRET,
    AlertReceiver,
    Email,
    alertmanager_config,
    load_alert_receiver,
)
from resources.settings import SettingsError
from tests.harness import alertmanager_dist
from tests.harness.procs import LOOPBACK, ServiceProcess, free_port

MAIL = {
    "PICLUSTER_ALERT_RECEIVERS": "email",
    "PICLUSTER_ALERT_EMAIL_TO": "owner@home.example",
    "PICLUSTER_ALERT_EMAIL_FROM": "picluster@home.example",
    "PICLUSTER_ALERT_SMTP_SMARTHOST": "smtp.home.example:587",
    "PICLUSTER_ALERT_SMTP_USERNAME": "picluster",
}
WEBHOOK = AlertReceiver(webhook=True, email=None)
BOTH = AlertReceiver(
    webhook=True,
    email=Email("owner@home.example", "picluster@home.example", "smtp.home.example:587", "pi"),
)


# --- settings ----------------------------------------------------------------------------------


def test_unset_means_alerts_reach_no_one_and_the_release_says_so():
    assert load_alert_receiver({}) is None
    config = alertmanager_config(None)
    assert [r["name"] for r in config["receivers"]] == ["null"]
    values = monitoring.alertmanager_values(None)
    assert "secrets" not in values["alertmanagerSpec"]
    assert alert_receiver.describe(None).startswith("Alerts reach no one")


def test_the_receivers_come_from_the_settings():
    assert load_alert_receiver({"PICLUSTER_ALERT_RECEIVERS": "webhook"}) == WEBHOOK
    both = load_alert_receiver({**MAIL, "PICLUSTER_ALERT_RECEIVERS": "email, webhook"})
    assert both == AlertReceiver(
        webhook=True,
        email=Email(
            "owner@home.example", "picluster@home.example", "smtp.home.example:587", "picluster"
        ),
    )
    assert alert_receiver.secret_keys(both) == ("webhook-url", "smtp-password")
    no_login = load_alert_receiver({**MAIL, "PICLUSTER_ALERT_SMTP_USERNAME": ""})
    assert alert_receiver.secret_keys(no_login) == ()


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"PICLUSTER_ALERT_RECEIVERS": "slack"}, "PICLUSTER_ALERT_RECEIVERS"),
        ({"PICLUSTER_ALERT_RECEIVERS": ","}, "PICLUSTER_ALERT_RECEIVERS"),
        ({**MAIL, "PICLUSTER_ALERT_EMAIL_TO": ""}, "PICLUSTER_ALERT_EMAIL_TO"),
        ({**MAIL, "PICLUSTER_ALERT_EMAIL_FROM": "picluster"}, "PICLUSTER_ALERT_EMAIL_FROM"),
        ({**MAIL, "PICLUSTER_ALERT_SMTP_SMARTHOST": "smtp.lan"}, "PICLUSTER_ALERT_SMTP_SMARTHOST"),
    ],
)
def test_a_wrong_receiver_setting_is_refused_naming_the_variable(environ, variable):
    with pytest.raises(SettingsError, match=variable):
        load_alert_receiver(environ)


def test_the_secret_the_receivers_need_is_declared_for_the_admin_and_shown_in_an_offline_plan(
    monkeypatch,
):
    from platform_assets.releases import catalogue, cluster
    from platform_assets.releases.spec import helmcharts
    from tests.releases.test_control_plane import INV

    webhook_only = alert_receiver.admin_secrets(WEBHOOK, "monitoring")
    assert [(s.name, s.namespace, s.keys) for s in webhook_only] == [
        (SECRET, "monitoring", (("webhook-url", "the webhook URL"),))
    ]
    monkeypatch.setenv("PICLUSTER_ALERT_RECEIVERS", "webhook")
    (release,) = [r for r in catalogue.releases(INV) if r.name == "monitoring"]
    assert release.admin_secrets == webhook_only
    shown = cluster.offline_markdown(release, helmcharts(release), [])
    assert (
        "Secret `monitoring/alertmanager-receiver`, made by an admin, must hold `webhook-url`"
        in shown
    )


def test_secrets_are_files_of_the_mounted_secret_never_values():
    values = monitoring.alertmanager_values(BOTH)
    assert values["alertmanagerSpec"]["secrets"] == [SECRET]
    (people,) = [r for r in values["config"]["receivers"] if r["name"] == "people"]
    (hook,) = people["webhook_configs"]
    assert hook == {
        "url_file": "/etc/alertmanager/secrets/alertmanager-receiver/webhook-url",
        "send_resolved": True,
    }
    (mail,) = people["email_configs"]
    assert mail["auth_password_file"] == (
        "/etc/alertmanager/secrets/alertmanager-receiver/smtp-password"
    )
    assert not {"url", "auth_password"} & {*hook, *mail}


def test_the_config_sets_every_key_the_charts_default_sets():
    # kube-prometheus-stack 88's default alertmanager.config (its values.yaml): Helm merges our
    # maps into it and replaces its lists, so a key left out would keep the chart's value.
    defaults = {
        "global": {"resolve_timeout"},
        "route": {"group_by", "group_wait", "group_interval", "repeat_interval", "receiver"},
    }
    config = alertmanager_config(WEBHOOK)
    assert {"global", "inhibit_rules", "route", "receivers", "templates"} <= set(config)
    for key, inner in defaults.items():
        assert inner <= set(config[key])


# --- the real amtool ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def binaries():
    alertmanager_dist.ensure()
    return alertmanager_dist.binary


def _config_file(tmp_path, receiver) -> str:
    path = tmp_path / "alertmanager.yaml"
    path.write_text(yaml.safe_dump(alertmanager_config(receiver)))
    return str(path)


@pytest.mark.parametrize("receiver", [None, WEBHOOK, BOTH], ids=["none", "webhook", "both"])
def test_amtool_accepts_the_config(binaries, tmp_path, receiver):
    checked = subprocess.run(
        [str(binaries("amtool")), "check-config", _config_file(tmp_path, receiver)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_amtool_refuses_a_broken_config(binaries, tmp_path):
    # The harness can fail: a route to a receiver that does not exist.
    config = alertmanager_config(None)
    config["route"]["routes"][0]["receiver"] = "nobody"
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(config))
    checked = subprocess.run(
        [str(binaries("amtool")), "check-config", str(path)], capture_output=True, text=True
    )
    assert checked.returncode != 0
    assert 'undefined receiver "nobody"' in checked.stdout + checked.stderr


@pytest.mark.parametrize(
    ("receiver", "labels", "goes_to"),
    [
        (WEBHOOK, {"alertname": "NodeDown", "severity": "critical", "node": "pi-a"}, "people"),
        (WEBHOOK, {"alertname": "NodeDiskFilling", "severity": "warning"}, "people"),
        (WEBHOOK, {"alertname": "KubeletTooManyPods", "severity": "info"}, "null"),
        (WEBHOOK, {"alertname": "Watchdog", "severity": "none"}, "null"),
        # Watchdog is silent even were it labelled critical: the first route wins.
        (WEBHOOK, {"alertname": "Watchdog", "severity": "critical"}, "null"),
        (None, {"alertname": "NodeDown", "severity": "critical"}, "null"),
    ],
)
def test_amtool_routes_each_severity(binaries, tmp_path, receiver, labels, goes_to):
    routed = subprocess.run(
        [
            str(binaries("amtool")),
            "config",
            "routes",
            "test",
            f"--config.file={_config_file(tmp_path, receiver)}",
            *(f"{k}={v}" for k, v in labels.items()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert routed.returncode == 0, routed.stderr
    assert routed.stdout.strip() == goes_to


# --- a real Alertmanager -----------------------------------------------------------------------


class Hook:
    """A webhook on loopback that keeps what Alertmanager posts to it."""

    def __init__(self):
        self.received: list[tuple[str, dict]] = []
        received = self.received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the standard library's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((LOOPBACK, free_port()), Handler)
        self.url = f"http://{LOOPBACK}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _alert(name: str, severity: str, node: str) -> dict:
    return {
        "labels": {"alertname": name, "severity": severity, "node": node},
        "annotations": {"summary": f"{name} on {node}"},
    }


def _api(port: int, path: str, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://{LOOPBACK}:{port}{path}", data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


@pytest.mark.service
def test_alertmanager_notifies_the_hook_from_its_file_and_holds_back_the_warning(
    binaries, tmp_path
):
    hook = Hook()
    token = "t0ken-only-in-the-file"  # noqa: S105 (a test value)
    url_file = tmp_path / "webhook-url"
    url_file.write_text(f"{hook.url}/alerts?token={token}\n")
    config = alertmanager_config(WEBHOOK)
    # The only change: the Secret's mount path, here a file of the test's.
    people = next(r for r in config["receivers"] if r["name"] == "people")
    people["webhook_configs"][0]["url_file"] = str(url_file)
    (tmp_path / "alertmanager.yaml").write_text(yaml.safe_dump(config))
    port = free_port()
    proc = ServiceProcess(
        "alertmanager",
        [
            str(binaries("alertmanager")),
            f"--config.file={tmp_path / 'alertmanager.yaml'}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            "--cluster.listen-address=",  # one replica, no gossip port
        ],
        tmp_path / "alertmanager.log",
        cwd=tmp_path,
        stop_grace=5.0,
    ).start()
    try:
        proc.wait_ready(lambda: _api(port, "/api/v2/status") is not None, 60, "serving")
        _api(
            port,
            "/api/v2/alerts",
            [
                _alert("NodeDiskFilling", "critical", "pi-agent-1"),
                _alert("NodeDiskFilling", "warning", "pi-agent-1"),
                _alert("NodeDiskFilling", "warning", "pi-agent-2"),
            ],
        )
        deadline = time.monotonic() + 45  # the critical route's group_wait is 10 s
        while not hook.received and time.monotonic() < deadline:
            time.sleep(0.5)
        assert hook.received, "the critical alert never reached the webhook"
        path, body = hook.received[0]
        assert path == f"/alerts?token={token}"
        assert [a["labels"]["severity"] for a in body["alerts"]] == ["critical"]
        state = {
            (a["labels"]["severity"], a["labels"]["node"]): a["status"]
            for a in _api(port, "/api/v2/alerts")
        }
        assert state[("warning", "pi-agent-1")]["inhibitedBy"]
        assert state[("warning", "pi-agent-1")]["state"] == "suppressed"
        assert state[("warning", "pi-agent-2")]["state"] == "active"  # another node
        assert token not in proc.log_path.read_text()
    finally:
        proc.stop()
        hook.server.shutdown()


def test_the_monitoring_release_takes_the_receiver_from_the_settings(monkeypatch):
    from tests.releases.test_zones import INV

    monkeypatch.setenv("PICLUSTER_ALERT_RECEIVERS", "webhook")
    release = monitoring.build(INV, other_releases=[])
    (stack,) = (c for c in release.charts if c.name == monitoring.CHART)
    values = stack.values["alertmanager"]
    assert values["alertmanagerSpec"]["secrets"] == [SECRET]
    assert [r["name"] for r in values["config"]["receivers"]] == ["null", "people"]
    assert release.description.endswith(
        "Critical and warning alerts go to a webhook (Secret alertmanager-receiver: webhook-url)."
    )
    monkeypatch.delenv("PICLUSTER_ALERT_RECEIVERS")
    assert "Alerts reach no one" in monitoring.build(INV, other_releases=[]).description
