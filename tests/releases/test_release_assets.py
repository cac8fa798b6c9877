"""The release assets in Dagster: planning with no cluster, the capacity gate, what an apply
records (and what it never records), rollback's choice of spec.

Planning against inventory.example.yaml uses a kubeconfig path that does not exist: nothing is
contacted (the local profile). The apply-path tests use the FAKE in-memory API of
`fake_kube.py` (no API semantics; the real control plane is for those): they prove the asset's
own logic, e.g. that an over-committed plan makes no call at all.
"""

import base64
import json
from pathlib import Path

import dagster as dg
import pytest
import yaml

from platform_assets.assets import InventoryFile
from platform_assets.inventory import load_inventory
from platform_assets.releases import catalogue
from platform_assets.releases.assets import (
    build_release_assets,
    capacity_plan,
    earlier_spec,
    rollback_release,
)
from resources.kubernetes import KubernetesResource
from tests.releases.fake_kube import FakeKube

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventory.example.yaml"
INV = load_inventory(EXAMPLE)
RELEASES = build_release_assets(INV)


def apply_config(**extra):
    return {"ops": {"releases": {"config": {"apply": True, "wait_s": 0, **extra}}}}


def test_local_plan_contacts_nothing_and_shows_every_whole_helmchart(tmp_path):
    kube = KubernetesResource(kubeconfig_path=str(tmp_path / "no-kubeconfig"))
    result = dg.materialize(
        [capacity_plan, RELEASES],
        resources={"inventory_file": InventoryFile(path=str(EXAMPLE)), "kubernetes": kube},
    )
    assert result.success
    # A plan is an observation: only capacity_plan (a computation) materializes.
    assert [m.asset_key.to_user_string() for m in result.get_asset_materialization_events()] == [
        "capacity_plan"
    ]
    observed = {
        e.asset_observation_data.asset_observation.asset_key.to_user_string(): (
            e.asset_observation_data.asset_observation.metadata
        )
        for e in result.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    }
    assert list(observed) == list(catalogue.RELEASE_NAMES)
    trino = observed["trino"]["plan"].value
    assert trino.startswith("No cluster contacted")
    shown = list(yaml.safe_load_all(trino.split("```yaml\n")[1].split("```")[0]))
    assert [m["kind"] for m in shown] == ["HelmChart", "HelmChart"]
    assert shown[1]["metadata"]["name"] == "trino"
    assert shown[1]["spec"]["values"]["image"]["tag"] == "476"
    assert "pg-metastore" in observed["postgres"]["plan"].value  # Secrets by name and keys
    checks = {
        (c.asset_key.to_user_string(), c.check_name): c
        for c in result.get_asset_check_evaluations()
    }
    assert checks[("capacity_plan", "capacity_fits")].passed
    # The whole catalogue fits the example (NiFi off): docs/releases.md, Capacity.
    assert checks[("capacity_plan", "full_catalogue_fits")].passed
    ready = checks[("trino", "release_ready")]
    assert not ready.passed and ready.severity == dg.AssetCheckSeverity.WARN
    assert "no kubeconfig at" in ready.description


def test_apply_without_a_cluster_is_refused(tmp_path):
    kube = KubernetesResource(kubeconfig_path=str(tmp_path / "no-kubeconfig"))
    result = dg.materialize(
        [RELEASES],
        selection=["metallb"],
        resources={"inventory_file": InventoryFile(path=str(EXAMPLE)), "kubernetes": kube},
        run_config=apply_config(),
        raise_on_error=False,
    )
    assert not result.success
    assert "cannot apply: no kubeconfig at" in str(result.failure_data_for_node("releases").error)


def _fake(tmp_path) -> FakeKube:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("fake: not read by the fake\n")
    return FakeKube.new(str(kubeconfig))


def test_an_over_committed_plan_is_refused_before_anything_is_applied(tmp_path):
    data = yaml.safe_load(EXAMPLE.read_text())
    data.pop("workloads", None)  # the inventory's own, hand-written capacity check
    data["nodes"][1]["memory_mib"] = 4096  # pi-agent-1 with 4 GB cannot hold Trino + metastore
    small = tmp_path / "inventory.yaml"
    small.write_text(yaml.safe_dump(data))
    kube = _fake(tmp_path)
    result = dg.materialize(
        [RELEASES],
        resources={"inventory_file": InventoryFile(path=str(small)), "kubernetes": kube},
        run_config=apply_config(),
        raise_on_error=False,
    )
    assert not result.success
    error = str(result.failure_data_for_node("releases").error)
    assert "over-commits a node; nothing was applied" in error and "pi-agent-1" in error
    assert kube.calls == []


def _generated_values(kube: FakeKube) -> list[str]:
    values = []
    for (_, kind, _, _), obj in kube.objects.items():
        if kind == "Secret":
            for key, value in obj["data"].items():
                text = base64.b64decode(value).decode()
                if key != "username":
                    values.append(text)
    return values


def _everything_recorded(instance: dg.DagsterInstance, run_id: str) -> str:
    parts = [dg.serialize_value(entry) for entry in instance.all_logs(run_id)]
    parts.append(dg.serialize_value(instance.get_run_by_id(run_id)))
    return "\n".join(parts)


def test_apply_records_the_spec_and_no_secret_anywhere(tmp_path, capsys):
    kube = _fake(tmp_path)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [RELEASES],
            selection=["postgres", "object_store"],
            resources={"inventory_file": InventoryFile(path=str(EXAMPLE)), "kubernetes": kube},
            run_config=apply_config(),
            instance=instance,
            raise_on_error=False,
        )
        values = _generated_values(kube)
        # 3 PostgreSQL passwords (+ a copy), 4 S3 key pairs (+ a copy), the identity file.
        assert len(values) >= 3 + 8
        recorded = _everything_recorded(instance, result.run_id)
    printed = capsys.readouterr()
    for value in values:
        assert value not in recorded
        assert value not in printed.out + printed.err
        for manifest in kube.objects.values():
            if manifest["kind"] == "HelmChart":
                assert value not in json.dumps(manifest)
    (mat,) = [
        m for m in result.get_asset_materialization_events() if m.asset_key.path == ["postgres"]
    ]
    meta = mat.materialization.metadata
    assert meta["chart_versions"].value == "postgres 1.0.0 (own manifests)"
    assert meta["spec"].value[0]["metadata"]["name"] == "postgres"
    # The fake never runs a helm-controller, so release_ready fails, naming why.
    checks = {c.asset_key.to_user_string(): c for c in result.get_asset_check_evaluations()}
    assert "job helm-install-postgres not created yet" in checks["postgres"].description


def test_a_second_apply_generates_no_new_secret_and_changes_no_helmchart(tmp_path):
    kube = _fake(tmp_path)
    resources = {"inventory_file": InventoryFile(path=str(EXAMPLE)), "kubernetes": kube}
    dg.materialize(
        [RELEASES],
        selection=["postgres"],
        resources=resources,
        run_config=apply_config(),
        raise_on_error=False,
    )
    first = sorted(_generated_values(kube))
    again = dg.materialize(
        [RELEASES],
        selection=["postgres"],
        resources=resources,
        run_config=apply_config(),
        raise_on_error=False,
    )
    assert sorted(_generated_values(kube)) == first
    (mat,) = again.get_asset_materialization_events()
    assert mat.materialization.metadata["changed"].value == "none"


def _record(instance, release, spec):
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=release, metadata={"spec": dg.MetadataValue.json(spec)})
    )


def _spec(release, version):
    return [
        {
            "kind": "HelmChart",
            "metadata": {"name": release, "labels": {"picluster.io/release": release}},
            "spec": {"version": version},
        }
    ]


def test_rollback_picks_the_earlier_recorded_spec():
    with dg.instance_for_test() as instance:
        for version in ("1", "2", "3"):
            _record(instance, "trino", _spec("trino", version))
        assert earlier_spec(instance, "trino", 1)[0][0]["spec"]["version"] == "2"
        assert earlier_spec(instance, "trino", 2)[0][0]["spec"]["version"] == "1"


ROLLBACK_REFUSED = [
    ("kafka", 1, "no release named 'kafka'"),
    ("trino", 0, "back must be 1 or more"),
    ("trino", 3, "trino has 3 recorded applies; none is 3 before the latest"),
]


@pytest.mark.parametrize(("release", "back", "message"), ROLLBACK_REFUSED)
def test_rollback_refuses_what_it_cannot_restore(release, back, message):
    with dg.instance_for_test() as instance:
        for version in ("1", "2", "3"):
            _record(instance, "trino", _spec("trino", version))
        with pytest.raises(dg.Failure, match=message):
            earlier_spec(instance, release, back)


def test_rollback_refuses_a_recorded_spec_of_something_else():
    with dg.instance_for_test() as instance:
        _record(instance, "trino", _spec("postgres", "1"))
        _record(instance, "trino", _spec("trino", "2"))
        with pytest.raises(dg.Failure, match="other than trino's HelmCharts; refusing"):
            earlier_spec(instance, "trino", 1)


def test_rollback_job_restores_the_earlier_spec(tmp_path):
    kube = _fake(tmp_path)
    resources = {"inventory_file": InventoryFile(path=str(EXAMPLE)), "kubernetes": kube}
    with dg.instance_for_test() as instance:
        first = dg.materialize(
            [RELEASES],
            selection=["metallb"],
            resources=resources,
            run_config=apply_config(),
            instance=instance,
            raise_on_error=False,
        )
        (good,) = first.get_asset_materialization_events()
        hc = kube.objects[("helm.cattle.io/v1", "HelmChart", "kube-system", "metallb")]
        changed = json.loads(json.dumps(hc))
        changed["spec"]["version"] = "0.15.9"
        kube.apply(changed, field_manager="someone")
        _record(instance, "metallb", [changed, good.materialization.metadata["spec"].value[1]])
        result = rollback_release.execute_in_process(
            run_config={
                "ops": {"rollback_release_op": {"config": {"release": "metallb", "wait_s": 0}}}
            },
            resources=resources,
            instance=instance,
        )
    assert result.success
    live = kube.objects[("helm.cattle.io/v1", "HelmChart", "kube-system", "metallb")]
    assert live["spec"]["version"] == "0.15.3"
    (mat,) = result.get_asset_materialization_events()
    assert mat.materialization.metadata["rolled_back_to_run"].value == first.run_id
    assert mat.materialization.metadata["changed"].value == "metallb"
