"""The CI commands, run exactly as documented, against the local profile in a fresh home."""

import io
import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "sensor-data.md"
COMMAND = re.compile(r"^(uv run (?:python -m data_assets\.cli simulate|dg launch) .+)$", re.M)


def documented_commands(path: Path) -> list[str]:
    return COMMAND.findall(path.read_text()) if path.exists() else []


def test_readme_shows_the_same_commands_as_the_data_doc():
    doc = documented_commands(DOC)
    assert len(doc) == 2, "docs/sensor-data.md must show the simulate and the dg launch command"
    readme = documented_commands(ROOT / "README.md")
    # The README's "Try it" repeats them: the same two commands, word for word.
    assert readme == doc


@pytest.mark.slow
def test_documented_commands_produce_the_tables_on_the_local_profile(tmp_path):
    simulate, launch = documented_commands(DOC)
    day = re.search(r"--day (\S+)", simulate)[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PICLUSTER_", "DAGSTER_"))}
    env.update({"PICLUSTER_HOME": str(tmp_path / "home"), "PICLUSTER_PROFILE": "local"})
    for command in (simulate, launch):
        done = subprocess.run(
            shlex.split(command), cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
        )
        assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "RUN_FAILURE" not in done.stderr + done.stdout
    assert "STEP_FAILURE" not in done.stderr + done.stdout

    store = tmp_path / "home" / "object-store"
    manifest = json.loads((store / f"warehouse/_simulator/manifests/dt={day}.json").read_text())
    expected = manifest["expected"]
    assert expected["rows_quarantined"] > 0 and expected["duplicates_dropped"] > 0
    curated = list((store / f"warehouse/sensor_readings/dt={day}").glob("*.parquet"))
    rows = sum(pq.read_table(io.BytesIO(p.read_bytes())).num_rows for p in curated)
    assert rows == expected["rows_curated"]
    quarantine = list((store / f"quarantine/sensor_readings/dt={day}").glob("*.jsonl"))
    records = [json.loads(line) for p in quarantine for line in p.read_text().splitlines()]
    assert len(records) == expected["rows_quarantined"]

    import duckdb

    with duckdb.connect(str(tmp_path / "home" / "warehouse.duckdb"), read_only=True) as con:
        (count,) = con.execute(
            "select count(*) from sensors.sensor_readings where dt = ?", [day]
        ).fetchone()
    assert count == expected["rows_curated"]
