"""Every cert-manager object the releases render (the LAN CA's issuers and every Certificate:
the gateways' and the backends' behind them), with NiFi on, admitted by the real API server
under cert-manager's own CRDs of the pinned version (read out of its Go module by
tests.harness.cert_manager_dist; the chart would install the same files) and stored as sent.

No cert-manager controller runs here: that a Certificate is issued, and its Secret holds the
keys the pods mount, is cert-manager's (test_backend_tls.py serves that layout for real)."""

import json
from pathlib import Path

import pytest
import yaml

from platform_assets.inventory import parse_inventory
from platform_assets.releases import catalogue
from tests.harness import cert_manager_dist
from tests.harness.kube import install_crd

pytestmark = pytest.mark.service

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((ROOT / "inventory.example.yaml").read_text())
INV = parse_inventory({**EXAMPLE, "nifi": True}, "inventory.yaml")
MANAGER = "test-certificates"


def cert_manager_objects() -> list[dict]:
    return [
        m
        for r in catalogue.releases(INV)
        for c in r.charts
        for m in c.manifests
        if m["apiVersion"] == "cert-manager.io/v1"
    ]


@pytest.fixture(scope="module")
def kube(kube_control_plane):
    kube = kube_control_plane.resource()
    cert_manager_dist.ensure()
    for name in cert_manager_dist.CRDS:
        install_crd(kube, cert_manager_dist.crd(name), MANAGER)
    for namespace in {m["metadata"].get("namespace") for m in cert_manager_objects()} - {None}:
        kube.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
            field_manager=MANAGER,
        )
    return kube


def test_every_release_with_a_backend_behind_the_gateway_brings_its_certificate():
    where = {
        (m["metadata"].get("namespace"), m["metadata"]["name"])
        for m in cert_manager_objects()
        if m["kind"] == "Certificate"
    }
    assert where == {
        ("cert-manager", "lan-root-ca"),
        ("gateway", "gateway-ops"),
        ("gateway", "gateway-lab"),
        ("gateway", "gateway-dash"),
        ("query", "trino"),
        ("monitoring", "grafana"),
        ("notebooks", "jupyterlab"),
        ("nifi", "nifi"),
        ("dagster", "dagster-webserver"),  # both webservers' Services (dagster.py)
    }


@pytest.mark.parametrize(
    "manifest",
    cert_manager_objects(),
    ids=lambda m: f"{m['kind']}/{m['metadata'].get('namespace', '')}/{m['metadata']['name']}",
)
def test_the_crds_admit_it_as_rendered(kube, manifest):
    # Server-side apply refuses a field the schema does not declare; a pruned or defaulted
    # one would differ below.
    would_be = kube.apply(manifest, field_manager=MANAGER, dry_run=True)
    assert would_be["spec"] == manifest["spec"]


def test_the_crd_refuses_a_certificate_with_an_unknown_output_format(kube):
    (trino,) = [m for m in cert_manager_objects() if m["metadata"]["name"] == "trino"]
    broken = json.loads(json.dumps(trino))
    broken["spec"]["additionalOutputFormats"] = [{"type": "CombinedPem"}]
    with pytest.raises(Exception, match="CombinedPem"):
        kube.apply(broken, field_manager=MANAGER, dry_run=True)


def test_the_crd_refuses_a_keystore_profile_it_does_not_know(kube):
    # The keystores block is checked too: a misspelled profile is refused, not pruned.
    (nifi,) = [m for m in cert_manager_objects() if m["metadata"].get("namespace") == "nifi"]
    broken = json.loads(json.dumps(nifi))
    broken["spec"]["keystores"]["pkcs12"]["profile"] = "Modern2024"
    with pytest.raises(Exception, match="Modern2024"):
        kube.apply(broken, field_manager=MANAGER, dry_run=True)
