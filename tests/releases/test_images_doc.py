"""docs/releases.md's image table and the catalogue agree: every image the releases run is in
the table with the tag the rendered HelmCharts carry, and no tag floats."""

import json
import re
from pathlib import Path

from platform_assets.inventory import load_inventory
from platform_assets.releases import catalogue
from platform_assets.releases.spec import helmcharts, images
from tests.releases.test_rendering import own_manifests

ROOT = Path(__file__).resolve().parents[2]
INV = load_inventory(ROOT / "inventory.example.yaml")
FLOATING = {"", "latest", "stable", "main", "master", "dev"}


def doc_images() -> dict[str, str]:
    text = (ROOT / "docs" / "releases.md").read_text()
    section = text.split("## Images", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    table = {}
    for row in rows[1:]:  # after the header
        image, tag = [cell.strip() for cell in row.strip("|").split("|")][:2]
        assert image not in table, f"{image} listed twice"
        table[image] = tag
    return table


def test_every_image_of_the_catalogue_is_in_the_table_with_its_tag():
    used = {img.repository: img.tag for r in catalogue.releases(INV) for _, img in images(r)}
    assert doc_images() == used


def test_every_tag_is_pinned():
    for image, tag in doc_images().items():
        assert tag not in FLOATING and re.fullmatch(r"v?\d+(\.\d+)*", tag), (image, tag)


def test_the_rendered_helmcharts_carry_the_tags_of_the_table():
    for release in catalogue.releases(INV):
        sent = ""
        for hc in helmcharts(release):
            sent += json.dumps(hc["spec"].get("values", {}))
            if "chartContent" in hc["spec"]:
                sent += json.dumps(own_manifests(hc))
        for _, img in images(release):
            as_values = json.dumps({"repository": img.repository, "tag": img.tag})[1:-1]
            # Charts that take the registry apart (kube-prometheus-stack and its subcharts).
            registry, _, repository = img.repository.partition("/")
            split = json.dumps({"registry": registry, "repository": repository, "tag": img.tag})
            assert img.ref in sent or as_values in sent or split[1:-1] in sent, (
                release.name,
                img.ref,
            )
