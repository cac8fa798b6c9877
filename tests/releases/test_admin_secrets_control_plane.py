"""The Secret only an admin makes, checked against the real control plane before a release plans
or applies: the monitoring release with alert receivers configured refuses while
`monitoring/alertmanager-receiver` is missing or lacks a key a receiver needs, naming the
Secret, its namespace, the keys and the kubectl command that makes it (placeholders, never a
value); with the Secret complete, or with no receiver configured, it plans. The secrets release
(OpenBao) waits the same way for `secrets/openbao-oidc`, and a rollback is checked as an apply.

What is real: the API server answering for the Secret and its namespace, the releases asset as
the UI runs it. No chart is rendered and no container runs (see test_control_plane.py).
"""

import base64

import dagster as dg
import pytest

from platform_assets.releases import alert_receiver, catalogue, openbao, secrets
from platform_assets.releases.assets import rollback_release
from platform_assets.releases.spec import CHART_NAMESPACE, AdminSecret, Release, helmcharts
from tests.releases.test_alert_receiver import MAIL
from tests.releases.test_control_plane import (  # noqa: F401 (the module's kube fixture)
    HC,
    INV,
    TEST_MANAGER,
    kube,
    resources,
    run,
)
from tests.releases.test_release_assets import _record

pytestmark = pytest.mark.service

NAMESPACE = "monitoring"
SECRET = alert_receiver.SECRET
# Stand-ins for what an admin would store: they must never reach an error, a log or a record.
WEBHOOK_URL = "https://hooks.home.example/alerts/token-4f9c2d"
SMTP_PASSWORD = "smtp-password-8e1b7a"  # noqa: S105 (the test's own stand-in)
CREATE = (
    "kubectl -n monitoring create secret generic alertmanager-receiver "
    "--from-literal=webhook-url='<the webhook URL>' "
    "--from-literal=smtp-password='<the SMTP password>'"
)


@pytest.fixture
def receivers(monkeypatch, kube):  # noqa: F811
    """Webhook and mail with a login (both keys needed); the namespace exists, the Secret not."""
    for name, value in {**MAIL, "PICLUSTER_ALERT_RECEIVERS": "webhook,email"}.items():
        monkeypatch.setenv(name, value)
    kube.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        field_manager=TEST_MANAGER,
    )
    kube.delete("v1", "Secret", SECRET, NAMESPACE)
    yield kube
    kube.delete("v1", "Secret", SECRET, NAMESPACE)  # other modules plan without receivers


def _admin_makes(kube, data: dict[str, str], name=SECRET, namespace=NAMESPACE):  # noqa: F811
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        },
        field_manager=TEST_MANAGER,
    )


def _error(result) -> str:
    assert not result.success
    return str(result.failure_data_for_node("releases").error)


def _stack_version(kube) -> str | None:  # noqa: F811
    live = kube.get(HC, "HelmChart", "kube-prometheus-stack", CHART_NAMESPACE)
    return live and live["metadata"]["resourceVersion"]


def test_a_missing_receiver_secret_refuses_plan_and_apply_naming_it(receivers):
    plan = run(receivers, ["monitoring"])
    error = _error(plan)
    assert (
        "monitoring: Secret monitoring/alertmanager-receiver does not exist; "
        "PICLUSTER_ALERT_RECEIVERS=webhook and mail with PICLUSTER_ALERT_SMTP_USERNAME needs it "
        "with the keys webhook-url, smtp-password (docs/monitoring.md, 'Where alerts go')"
    ) in error
    assert f"  {CREATE}" in error  # the namespace exists: no `kubectl create namespace`
    assert "nothing was planned or applied" in error
    assert not [e for e in plan.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    before = _stack_version(receivers)
    apply = run(receivers, ["monitoring"], apply=True)
    assert "monitoring: Secret monitoring/alertmanager-receiver does not exist" in _error(apply)
    assert apply.get_asset_materialization_events() == []
    assert _stack_version(receivers) == before  # not applied (absent, or as it was)


def test_a_secret_without_the_smtp_password_is_refused_naming_the_key(receivers, capsys):
    _admin_makes(receivers, {"webhook-url": WEBHOOK_URL})
    with dg.instance_for_test() as instance:
        result = run(receivers, ["monitoring"], instance=instance)
        records = "\n".join(dg.serialize_value(e) for e in instance.all_logs(result.run_id))
    error = _error(result)
    assert (
        "monitoring: Secret monitoring/alertmanager-receiver lacks the keys smtp-password, "
        "which PICLUSTER_ALERT_RECEIVERS=webhook and mail with PICLUSTER_ALERT_SMTP_USERNAME "
        "needs (docs/monitoring.md, 'Where alerts go'). An admin adds them:\n"
        "  kubectl -n monitoring patch secret alertmanager-receiver --type=merge "
        """-p '{"stringData": {"smtp-password": "<the SMTP password>"}}'"""
    ) in error
    printed = capsys.readouterr()
    for where in (error, records, printed.out + printed.err):
        assert WEBHOOK_URL not in where


def test_a_complete_secret_lets_the_release_plan(receivers, capsys):
    _admin_makes(receivers, {"webhook-url": WEBHOOK_URL, "smtp-password": SMTP_PASSWORD})
    with dg.instance_for_test() as instance:
        result = run(receivers, ["monitoring"], instance=instance)
        records = "\n".join(dg.serialize_value(e) for e in instance.all_logs(result.run_id))
    assert result.success
    (obs,) = [e for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    assert obs.asset_observation_data.asset_observation.metadata["mode"].value == "plan"
    printed = capsys.readouterr()
    for value in (WEBHOOK_URL, SMTP_PASSWORD):
        assert value not in records
        assert value not in printed.out + printed.err


def test_with_no_receiver_configured_nothing_is_checked(monkeypatch, kube):  # noqa: F811
    monkeypatch.delenv("PICLUSTER_ALERT_RECEIVERS", raising=False)
    assert kube.get("v1", "Secret", SECRET, NAMESPACE) is None
    (monitoring,) = [r for r in catalogue.releases(INV) if r.name == "monitoring"]
    assert monitoring.admin_secrets == ()
    assert run(kube, ["monitoring"]).success


def test_mail_without_a_login_needs_no_secret(monkeypatch, kube):  # noqa: F811
    for name, value in {**MAIL, "PICLUSTER_ALERT_SMTP_USERNAME": ""}.items():
        monkeypatch.setenv(name, value)
    assert kube.get("v1", "Secret", SECRET, NAMESPACE) is None
    assert run(kube, ["monitoring"]).success


def test_a_secret_in_a_namespace_not_made_yet_starts_the_command_with_the_namespace(kube):  # noqa: F811
    release = Release(
        name="example",
        namespace="admin-secret-test",
        charts=(),
        workloads=(),
        description="",
        admin_secrets=(
            AdminSecret("hook", "admin-secret-test", (("url", "the URL"),), "a test", "nowhere"),
        ),
    )
    assert kube.get("v1", "Namespace", "admin-secret-test") is None
    (problem,) = secrets.admin_secret_problems(kube, [release])
    assert problem.endswith(
        "\n  kubectl create namespace admin-secret-test && "
        "kubectl -n admin-secret-test create secret generic hook --from-literal=url='<the URL>'"
    )


def test_the_secrets_release_waits_for_openbaos_oidc_client_secret(kube, capsys):  # noqa: F811
    # OpenBao's server reads it into its environment at start: without it the pod never starts.
    oidc, ns = openbao.OIDC_SECRET, openbao.NAMESPACE
    kube.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        field_manager=TEST_MANAGER,
    )
    kube.delete("v1", "Secret", oidc, ns)
    refused = _error(run(kube, ["secrets"]))
    assert (
        "secrets: Secret secrets/openbao-oidc does not exist; OpenBao's server (people's OIDC "
        "logins) needs it with the keys client_secret (docs/roles/admin.md, 'What only an admin "
        "does, once', step 1). An admin creates it:\n  kubectl -n secrets create secret generic "
        "openbao-oidc --from-literal=client_secret='<the client secret the OIDC provider issued "
        "OpenBao>'"
    ) in refused
    client_secret = "oidc-client-secret-5d0e3a"  # noqa: S105 (the test's own stand-in)
    _admin_makes(kube, {"client_secret": client_secret}, oidc, ns)
    try:
        with dg.instance_for_test() as instance:
            result = run(kube, ["secrets"], instance=instance)
            records = "\n".join(dg.serialize_value(e) for e in instance.all_logs(result.run_id))
        assert result.success
        printed = capsys.readouterr()
        assert client_secret not in records + printed.out + printed.err
    finally:
        kube.delete("v1", "Secret", oidc, ns)


def test_a_rollback_is_refused_while_a_secret_it_needs_is_missing(receivers):
    (monitoring,) = [r for r in catalogue.releases(INV) if r.name == "monitoring"]
    spec = helmcharts(monitoring)
    before = _stack_version(receivers)
    with dg.instance_for_test() as instance:
        for _ in range(2):  # two recorded applies: one to go back to
            _record(instance, "monitoring", spec)
        result = rollback_release.execute_in_process(
            run_config={
                "ops": {"rollback_release_op": {"config": {"release": "monitoring", "wait_s": 0}}}
            },
            resources=resources(receivers),
            instance=instance,
            raise_on_error=False,
        )
    assert not result.success
    error = str(result.failure_data_for_node("rollback_release_op").error)
    assert "monitoring: Secret monitoring/alertmanager-receiver does not exist" in error
    assert "nothing was planned or applied" in error
    assert result.get_asset_materialization_events() == []
    assert _stack_version(receivers) == before
