"""The access releases' HelmCharts with NiFi switched on (the catalogue's CRD test covers the
example, NiFi off), admitted by the real helm-controller CRD as rendered, and a generated
Secret of theirs never in any HelmChart."""

import json
from pathlib import Path

import pytest
import yaml

from platform_assets.inventory import parse_inventory
from platform_assets.releases import catalogue
from platform_assets.releases.spec import FIELD_MANAGER, helmcharts

pytestmark = pytest.mark.service

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((ROOT / "inventory.example.yaml").read_text())
INV = parse_inventory({**EXAMPLE, "nifi": True}, "inventory.yaml")
ACCESS = ("network_zones", "access_roles", "secrets", "gateway", "notebooks", "nifi")


def test_the_access_helmcharts_are_admitted_by_the_real_crd_as_rendered(kube_control_plane):
    kube = kube_control_plane.resource()
    charts = [m for r in catalogue.releases(INV) if r.name in ACCESS for m in helmcharts(r)]
    assert {m["metadata"]["name"] for m in charts} >= {"openbao", "gateway-lab", "nifi"}
    for manifest in charts:
        answered = kube.apply(manifest, field_manager=FIELD_MANAGER, dry_run=True)
        assert {k: answered["spec"].get(k) for k in manifest["spec"]} == manifest["spec"]
        # Only names of Secrets travel: no secret is ever a literal (OpenBao's client
        # secret is an env reference, oauth2-proxy's a file, the rest Secret names).
        text = json.dumps(manifest["spec"].get("values", {}))
        for marker in (r"client_secret = \"", r"cookie_secret = \"", '"seal_key": "'):
            assert marker not in text, manifest["metadata"]["name"]
