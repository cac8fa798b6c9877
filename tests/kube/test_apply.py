"""Server-side apply, its dry run and diff, and admission, against the real API server."""

import pytest

from resources.kubernetes import ApiRefused, ApplyConflict

pytestmark = pytest.mark.service

MANAGER = "piclusterops-tests"


def config_map(namespace: str, data: dict[str, str]) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": namespace},
        "data": data,
    }


def test_a_second_apply_of_the_same_manifest_changes_nothing(kube, namespace):
    first = kube.apply(config_map(namespace, {"a": "1"}), field_manager=MANAGER)
    second = kube.apply(config_map(namespace, {"a": "1"}), field_manager=MANAGER)
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    managers = {m["manager"] for m in second["metadata"]["managedFields"]}
    assert managers == {MANAGER}


def test_another_manager_owning_a_field_conflicts_unless_forced(kube, namespace):
    kube.apply(config_map(namespace, {"a": "1"}), field_manager="release-owner")
    with pytest.raises(ApplyConflict) as conflict:
        kube.apply(config_map(namespace, {"a": "2"}), field_manager="someone-else")
    assert conflict.value.status == 409
    assert f"ConfigMap/{namespace}/settings" in str(conflict.value)
    assert kube.get("v1", "ConfigMap", "settings", namespace)["data"] == {"a": "1"}
    forced = kube.apply(config_map(namespace, {"a": "2"}), field_manager="someone-else", force=True)
    assert forced["data"] == {"a": "2"}


def test_a_dry_run_answers_what_would_be_and_stores_nothing(kube, namespace):
    would_be = kube.apply(config_map(namespace, {"a": "1"}), field_manager=MANAGER, dry_run=True)
    assert would_be["data"] == {"a": "1"}
    assert kube.get("v1", "ConfigMap", "settings", namespace) is None


def test_apply_diff_shows_a_new_object_then_only_what_changes(kube, namespace):
    new = kube.apply_diff(config_map(namespace, {"a": "1"}), field_manager=MANAGER)
    assert (new.exists, new.changed) == (False, True)
    assert "+  a: '1'" in new.diff
    kube.apply(config_map(namespace, {"a": "1"}), field_manager=MANAGER)
    same = kube.apply_diff(config_map(namespace, {"a": "1"}), field_manager=MANAGER)
    assert (same.exists, same.changed, same.diff) == (True, False, "")
    changed = kube.apply_diff(config_map(namespace, {"a": "2"}), field_manager=MANAGER)
    assert changed.changed
    lines = [line for line in changed.diff.splitlines() if line[:1] in "+-"]
    assert lines == [
        f"--- ConfigMap/{namespace}/settings (live)",
        f"+++ ConfigMap/{namespace}/settings (after apply)",
        "-  a: '1'",
        "+  a: '2'",
    ]
    assert "resourceVersion" not in changed.diff and "managedFields" not in changed.diff
    assert kube.get("v1", "ConfigMap", "settings", namespace)["data"] == {"a": "1"}


def test_a_secret_diff_says_a_value_changes_without_showing_it(kube, namespace):
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": namespace},
        "stringData": {"password": "old-secret-value"},
    }
    kube.apply(secret, field_manager=MANAGER)
    secret["stringData"] = {"password": "new-secret-value"}
    diff = kube.apply_diff(secret, field_manager=MANAGER)
    assert diff.changed
    assert "(secret, changed)" in diff.diff
    for shown in ("old-secret-value", "new-secret-value", "b2xkLXNlY3JldC12YWx1ZQ"):
        assert shown not in diff.diff


def test_a_helmchart_the_crd_schema_refuses_is_named(kube, namespace):
    chart = {
        "apiVersion": "helm.cattle.io/v1",
        "kind": "HelmChart",
        "metadata": {"name": "broken", "namespace": namespace},
        "spec": {"chart": "metallb", "bootstrap": "not-a-boolean"},
    }
    with pytest.raises(ApiRefused) as refused:
        kube.apply(chart, field_manager=MANAGER)
    # A type the schema does not allow fails building the typed apply patch, which the API
    # server (v1.34) answers with 500, not 422; its message names the field and the type.
    assert refused.value.status == 500
    assert f"HelmChart/{namespace}/broken" in str(refused.value)
    assert ".spec.bootstrap: expected boolean" in str(refused.value)
    assert kube.get("helm.cattle.io/v1", "HelmChart", "broken", namespace) is None


def test_network_policies_are_validated_though_nothing_enforces_them(kube, namespace):
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "deny-all", "namespace": namespace},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }
    assert kube.apply(policy, field_manager=MANAGER)["spec"]["policyTypes"] == ["Ingress"]
    policy["spec"]["policyTypes"] = ["Sideways"]
    with pytest.raises(ApiRefused) as refused:
        kube.apply(policy, field_manager=MANAGER)
    assert refused.value.status == 422


def test_an_unknown_kind_is_refused_by_name(kube, namespace):
    with pytest.raises(ApiRefused, match="serves no kind Gadget in example.com/v1"):
        kube.get("example.com/v1", "Gadget", "x", namespace)


def test_delete_says_whether_there_was_something(kube, namespace):
    kube.apply(config_map(namespace, {"a": "1"}), field_manager=MANAGER)
    assert kube.delete("v1", "ConfigMap", "settings", namespace) is True
    assert kube.delete("v1", "ConfigMap", "settings", namespace) is False
