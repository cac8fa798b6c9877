"""Malformed uploads of every kind, through the paths a user hits: the parser, the landing sensor
with curation on the folder store and SQLite ledger, and the data graph on the local profile with
DuckDB. Each case says how many of its lines must be curated, which reasons its quarantined lines
get and how many are duplicates; whatever the file, nothing crashes and every line is accounted
for."""

import gzip
import io
import json
import os
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest

from data_assets.curation import curate_batch
from data_assets.layout import CURATED_PREFIX, QUARANTINE_PREFIX
from data_assets.readings import REASONS, parse_object
from resources.ledger import Batch, batch_id_for
from resources.object_store import LocalObjectStore
from sensors.landing import LandingCursor, evaluate_tick

DAY = "2026-11-24"
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
HEADER = "device_id,reading_ts,temperature_c,humidity_pct,pressure_hpa"
FIELDS = dict(device_id="env-01", temperature_c=21.5, humidity_pct=45.0, pressure_hpa=1013.2)


class Minutes:
    """Hands out reading times on DAY, a new minute each, so no two cases share a reading."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"{DAY}T{self.n // 60:02d}:{self.n % 60:02d}:00Z"


ts = Minutes()


def js(**changes) -> str:
    """One JSON line; `reading_ts` defaults to a fresh minute; a value of ... drops the field."""
    record = {"device_id": "env-01", "reading_ts": None, **FIELDS, **changes}
    record = {"reading_ts": ts(), **{k: v for k, v in record.items() if v is not None}}
    record = {k: v for k, v in record.items() if v is not ...}
    return json.dumps(record)


def cs(*values: str, device: str = "env-01") -> str:
    """One CSV row; with no values a good reading at a fresh minute."""
    return ",".join(values) if values else f"{device},{ts()},21.5,45,1013.2"


def lines(*rows: str, end: str = "\n") -> bytes:
    return (end.join(rows) + end).encode()


# (case, file name under landing/<DAY>/, bytes, readings, quarantine reasons, duplicates)
CASES = [
    ("binary junk", "junk.jsonl", bytes(range(256)) * 8, 0, ["undecodable_file"], 0),
    (
        "NUL byte mid-line",
        "nul.jsonl",
        lines(js(), js().replace("env-01", "env\0-01"), js()),
        2,
        ["undecodable_line"],
        0,
    ),
    (
        "latin-1 in one line",
        "latin1.csv",
        lines(HEADER, cs(), cs(device="caf\xe9"), cs()).replace(b"caf\xc3\xa9", b"caf\xe9"),
        2,
        ["undecodable_line"],
        0,
    ),
    (
        "invalid UTF-8 in one line",
        "bad-utf8.jsonl",
        lines(js(), js()).replace(b'"env-01"', b'"env-\xc3\x28"', 1),
        1,
        ["undecodable_line"],
        0,
    ),
    (
        "UTF-16 with BOM",
        "utf16.csv",
        (HEADER + "\n" + cs() + "\n").encode("utf-16"),
        0,
        ["undecodable_file"],
        0,
    ),
    (
        "UTF-16 without BOM",
        "utf16le.jsonl",
        lines(js(), js()).decode().encode("utf-16-le"),
        0,
        ["undecodable_file"],
        0,
    ),
    ("UTF-8 BOM", "bom.jsonl", b"\xef\xbb\xbf" + lines(js(), js()), 2, [], 0),
    (
        "truncated gzip",
        "cut.jsonl.gz",
        gzip.compress(lines(*(js() for _ in range(40))))[:-25],
        0,
        ["undecodable_file"],
        0,
    ),
    ("gzip of gzip", "twice.jsonl.gz", gzip.compress(gzip.compress(lines(js(), js()))), 2, [], 0),
    (
        "two gzip members",
        "members.csv.gz",
        gzip.compress(lines(HEADER, cs())) + gzip.compress(lines(cs())),
        2,
        [],
        0,
    ),
    (".gz name, not gzip", "plain.jsonl.gz", lines(js()), 1, [], 0),
    (
        "gzip padded with zero bytes",
        "padded.jsonl.gz",
        gzip.compress(lines(js(), js())) + bytes(512),
        2,
        [],
        0,
    ),
    (
        "gzip with junk after it",
        "tail.jsonl.gz",
        gzip.compress(lines(js())) + b"junk",
        0,
        ["undecodable_file"],
        0,
    ),
    ("zero bytes", "zero.jsonl", b"", 0, ["empty_file"], 0),
    ("whitespace only", "blank.csv", b" \t\r\n\n   \n", 0, ["empty_file"], 0),
    ("CSV header only", "header.csv", lines(HEADER), 0, ["empty_file"], 0),
    (
        "CSV duplicated column",
        "dupcol.csv",
        lines(HEADER + ",temperature_c", cs() + ",99", cs() + ",1"),
        0,
        ["duplicate_field"] * 2,
        0,
    ),
    ("CSV without header", "noheader.csv", lines(cs(), cs()), 0, ["missing_header"] * 2, 0),
    (
        "CSV header in upper case",
        "upper.csv",
        lines(HEADER.upper(), cs()),
        0,
        ["missing_header"] * 2,
        0,
    ),
    (
        "CSV header in another order",
        "order.csv",
        lines(
            "pressure_hpa,humidity_pct,temperature_c,reading_ts,device_id",
            f"1013,45,21.5,{ts()},env-01",
        ),
        1,
        [],
        0,
    ),
    (
        "CSV extra and missing values",
        "ragged.csv",
        lines(HEADER, cs(), cs() + ",1", ",".join(cs().split(",")[:4]), cs()),
        2,
        ["wrong_field_count"] * 2,
        0,
    ),
    (
        "CSV quoted comma",
        "quoted.csv",
        lines(HEADER, f'"env-01","{ts()}","21,5",45,1013', f'"env-01","{ts()}","21.5","45","1013"'),
        1,
        ["invalid_number"],
        0,
    ),
    (
        "CSV quoted line break",
        "newline.csv",
        lines(HEADER, f'env-01,{ts()},21.5,45,"10', '13"', cs()),
        1,
        ["malformed_csv", "wrong_field_count"],
        0,
    ),
    (
        "CSV open quote",
        "openquote.csv",
        lines(HEADER, f'env-01,"{ts()},21.5,45,1013', cs()),
        1,
        ["malformed_csv"],
        0,
    ),
    (
        "CSV trailing comma everywhere",
        "trailing.csv",
        lines(HEADER + ",", cs() + ",", cs() + ","),
        2,
        [],
        0,
    ),
    (
        "CSV trailing comma on rows only",
        "trailing-rows.csv",
        lines(HEADER, cs() + ",", cs()),
        1,
        ["wrong_field_count"],
        0,
    ),
    (
        "CSV value under an unnamed column",
        "unnamed.csv",
        lines(HEADER + ",", cs() + ",7"),
        0,
        ["unexpected_field"],
        0,
    ),
    (
        "CSV with CRLF and a lone CR",
        "crlf.csv",
        lines(HEADER, cs(), cs() + "\r" + cs(), end="\r\n"),
        1,
        ["malformed_csv"],
        0,
    ),
    (
        "JSON arrays, strings, numbers, null, booleans",
        "notobj.jsonl",
        lines("[1, 2]", '"text"', "42", "null", "true", js()),
        1,
        ["not_an_object"] * 5,
        0,
    ),
    (
        "JSON nested object as a measure",
        "nested.jsonl",
        lines(js(temperature_c={"value": 21.5})),
        0,
        ["invalid_number"],
        0,
    ),
    (
        "JSON lone surrogates in keys and values",
        "surrogate.jsonl",
        lines(
            js().replace('{"reading_ts"', '{"\\ud800": 1, "reading_ts"'),
            js(device_id="\udc80"),
            '"\\ud800"',
            js(),
        ),
        1,
        ["unexpected_field", "invalid_device_id", "not_an_object"],
        0,
    ),
    (
        "JSON duplicate keys",
        "dupkeys.jsonl",
        lines(js().replace('{"reading_ts"', '{"device_id": "env-99", "reading_ts"'), js()),
        1,
        ["duplicate_field"],
        0,
    ),
    (
        "JSON trailing comma",
        "trailing.jsonl",
        lines(js()[:-1] + ",}", js()),
        1,
        ["malformed_json"],
        0,
    ),
    (
        "JSON NaN and infinities",
        "nan.jsonl",
        lines(*(js().replace("21.5", v) for v in ("NaN", "Infinity", "-Infinity"))),
        0,
        ["invalid_number"] * 3,
        0,
    ),
    (
        "JSON -0 and numbers as text",
        "numtext.jsonl",
        lines(
            js(temperature_c="-0"),
            js(humidity_pct=" 45 "),
            js(pressure_hpa="1.0132e3"),
            js().replace("21.5", "-0"),
        ),
        4,
        [],
        0,
    ),
    (
        "JSON numbers as odd text",
        "oddnum.jsonl",
        lines(
            js(pressure_hpa="1_013"),
            js(pressure_hpa="\uff11\uff10\uff11\uff13"),
            js(pressure_hpa="0x3f5"),
            js(humidity_pct="45%"),
        ),
        0,
        ["invalid_number"] * 4,
        0,
    ),
    (
        "JSON booleans as measures",
        "bool.jsonl",
        lines(js(temperature_c=True), js(humidity_pct=False)),
        0,
        ["invalid_number"] * 2,
        0,
    ),
    (
        "JSON huge numbers",
        "huge.jsonl",
        lines(
            js().replace("21.5", "1e400"),
            js().replace("21.5", "1" + "0" * 400),
            js(reading_ts=10**400),
        ),
        0,
        ["invalid_number", "out_of_range", "timestamp_out_of_range"],
        0,
    ),
    (
        "JSON 10 MB line",
        "long.jsonl",
        lines(js(device_id="d" * 10_000_000), js()),
        1,
        ["invalid_device_id"],
        0,
    ),
    ("JSON nested 100k deep", "deep.jsonl", lines("[" * 100_000, js()), 1, ["malformed_json"], 0),
    (
        "timestamps without a zone, date only",
        "nozone.jsonl",
        lines(js(reading_ts=f"{DAY}T10:00:00"), js(reading_ts=DAY)),
        0,
        ["timestamp_without_timezone"] * 2,
        0,
    ),
    (
        "timestamps with offsets and fractions",
        "offsets.jsonl",
        lines(
            js(reading_ts=f"{DAY}T16:30:00+05:30"),
            js(reading_ts=f"{DAY} 11:00:00.250-00:00"),
            js(reading_ts=f"{DAY}T11:01:00.123456Z"),
        ),
        3,
        [],
        0,
    ),
    (
        "Z and +00:00 are the same instant",
        "zulu.jsonl",
        lines(
            js(reading_ts=f"{DAY}T12:00:00Z"),
            js(reading_ts=f"{DAY}T12:00:00+00:00"),
            js(reading_ts="1795521600.0"),
        ),
        3,
        [],
        2,
    ),
    (
        "leap second",
        "leap.jsonl",
        lines(js(reading_ts=f"{DAY}T23:59:60Z")),
        0,
        ["invalid_timestamp"],
        0,
    ),
    (
        "years 0001 and 9999",
        "years.jsonl",
        lines(
            js(reading_ts="0001-01-01T00:00:00+05:30"), js(reading_ts="9999-12-31T23:59:59-05:00")
        ),
        0,
        ["timestamp_out_of_range"] * 2,
        0,
    ),
    (
        "epochs: float, negative, in text, odd digits",
        "epochs.jsonl",
        lines(
            js(reading_ts=1795521660.5),
            js(reading_ts=-1795521660),
            js(reading_ts="1795521720"),
            js(reading_ts="\u0661\u0667\u0669\u0665\u0665\u0662\u0661\u0667\u0662\u0660"),
        ),
        2,
        ["timestamp_out_of_range", "invalid_timestamp"],
        0,
    ),
    (
        "device ids that are not ids",
        "devices.jsonl",
        lines(
            *(
                js(device_id=d)
                for d in (
                    "",
                    " ",
                    "e" * 65,
                    "env/01",
                    "env'01",
                    "x'; DROP TABLE t;--",
                    "env\n01",
                    "énv",
                    " env-01",
                )
            )
        ),
        0,
        ["null_field"] + ["invalid_device_id"] * 8,
        0,
    ),
    ("the longest device id", "longest.jsonl", lines(js(device_id="e" * 64)), 1, [], 0),
    (
        "the same reading twice",
        "twice.jsonl",
        lines(*([js(reading_ts=f"{DAY}T13:00:00Z")] * 2)),
        2,
        [],
        1,
    ),
    (
        "readings across days, past and future",
        "days-20261124.jsonl",
        lines(
            js(),
            js(reading_ts="2026-11-23T23:59:00Z"),
            js(reading_ts="2026-01-02T00:00:00Z"),
            js(reading_ts="2026-11-26T01:00:00Z"),
            js(reading_ts="2025-12-31T23:59:59Z"),
            js(reading_ts="2027-11-24T00:00:00Z"),
            js(temperature_c=150, reading_ts="2026-11-23T10:00:00Z"),
        ),
        4,
        ["timestamp_out_of_range", "timestamp_out_of_range", "out_of_range"],
        0,
    ),
]

IDS = [case[0] for case in CASES]


@pytest.mark.parametrize(("name", "key", "data", "readings", "reasons", "dups"), CASES, ids=IDS)
def test_the_parser_reads_every_line_of_a_bad_file(name, key, data, readings, reasons, dups):
    parsed = parse_object(f"landing/{DAY}/{key}", data, NOW)
    assert len(parsed.readings) == readings, [(r.source_line, r.reason) for r in parsed.rejections]
    assert sorted(r.reason for r in parsed.rejections) == sorted(reasons)
    assert parsed.rows_read == len(parsed.readings) + len(parsed.rejections)
    physical = max(1, data.count(b"\n") + (not data.endswith(b"\n")))
    for rejection in parsed.rejections:
        assert rejection.reason in REASONS
        assert rejection.detail, rejection
        # Bounded: quarantine records are JSON objects the warehouse reads whole.
        assert len(rejection.raw) < 5000 and len(rejection.detail) < 400
        assert 0 <= rejection.source_line <= physical


def _records(store) -> list[dict]:
    return [
        json.loads(line)
        for info in store.list(QUARANTINE_PREFIX)
        for line in store.get(info.key).splitlines()
    ]


def _curated(store) -> list[dict]:
    return [
        row
        for info in store.list(CURATED_PREFIX)
        for row in pq.read_table(io.BytesIO(store.get(info.key))).to_pylist()
    ]


def _drain(store, ledger, now, cursor=None):
    """Sensor ticks and the runs they request, until the ledger has nothing left to start."""
    results = []
    cursor = cursor or LandingCursor()
    for _ in range(20):
        tick = evaluate_tick(store, ledger, cursor, now, rescan_interval=timedelta(0))
        cursor = tick.cursor
        if not tick.batches:
            return results, cursor
        for batch in tick.batches:
            result = curate_batch(store, ledger, batch, now)
            assert result.passed, {k: c.description for k, c in result.checks.items()}
            ledger.finish_batch(batch.batch_id, "test-run", result.stats)
            results.append(result)
    raise AssertionError("the sensor kept requesting runs")


def test_sensor_and_curation_account_for_every_line_of_every_bad_file(local_store, sqlite_ledger):
    for _, key, data, *_ in CASES:
        local_store.put(f"landing/{DAY}/{key}", data)
    # The same content re-sent under another name: all of it duplicates.
    local_store.put(
        f"landing/{DAY}/resent-bom.jsonl", dict((c[1], c[2]) for c in CASES)["bom.jsonl"]
    )
    results, _ = _drain(local_store, sqlite_ledger, NOW)
    # Readings for tomorrow (a device clock ahead, within tolerance) wait for their day's
    # partition; then a run for that day curates them.
    tomorrow = "2026-11-26"
    pending = sqlite_ledger.pending_for_day(tomorrow)
    assert [v.key for v in pending] == [f"landing/{DAY}/days-20261124.jsonl"]
    batch = Batch(batch_id_for(tomorrow, pending), tomorrow, pending)
    sqlite_ledger.save_batches([batch])
    results.append(curate_batch(local_store, sqlite_ledger, batch, NOW))
    assert results[-1].passed and results[-1].rows_curated == 1
    assert {r.day for r in results} == {"2026-01-02", "2026-11-23", DAY, tomorrow}

    rows, records = _curated(local_store), _records(local_store)
    per_file = {
        f"landing/{DAY}/{key}": (n - dups, sorted(why)) for _, key, _, n, why, dups in CASES
    }
    per_file[f"landing/{DAY}/resent-bom.jsonl"] = (0, [])
    got = {
        key: (
            sum(r["source_object"] == key for r in rows),
            sorted(r["reason"] for r in records if r["source_object"] == key),
        )
        for key in per_file
    }
    assert got == per_file
    assert {r["source_object"] for r in rows} | {r["source_object"] for r in records} <= set(
        per_file
    )
    # Reconciliation over all runs: every line read is curated, quarantined or a duplicate.
    duplicates = sum(dups for *_, dups in CASES) + 2
    assert sum(r.duplicates_dropped for r in results) == duplicates
    assert sum(r.rows_read for r in results) == len(rows) + len(records) + duplicates
    assert len({(r["device_id"], r["reading_ts"]) for r in rows}) == len(rows)
    assert all(r["reason"] in REASONS and r["detail"] for r in records)


@pytest.mark.parametrize(
    "name",
    [
        b"with space.jsonl",
        "\u00fcn\u00ef \u2713.jsonl".encode(),
        b"back\\slash.jsonl",
        b"caf\xe9-latin1-name.jsonl",
        b"new\nline.jsonl",
        b"quote\"'; drop table x.jsonl",
        b"a..b.jsonl",
        b"d/" * 60 + b"deep.jsonl",
        b"x" * 240 + b".jsonl",
    ],
    ids=lambda n: n[:20].decode("utf-8", "backslashreplace"),
)
def test_odd_object_names_are_curated_under_their_own_name(tmp_path, sqlite_ledger, name):
    store = LocalObjectStore(root=str(tmp_path / "object-store"))
    # Dropped by hand into the folder: the name is bytes on disk, whatever the store allows.
    path = os.path.join(os.fsencode(tmp_path / "object-store" / "landing"), name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = lines(js(), js())
    with open(path, "wb") as f:
        f.write(data)
    _drain(store, sqlite_ledger, NOW)
    rows = _curated(store)
    assert len(rows) == 2 and not _records(store)
    # A name that is not UTF-8 cannot be an S3 key: its odd bytes read as \xNN, as in `raw`.
    key = "landing/" + name.decode("utf-8", "backslashreplace")
    assert {r["source_object"] for r in rows} == {key}
    assert store.get(key) == data and store.stat(key).size == len(data)


def test_hidden_files_are_not_uploads(local_store, sqlite_ledger):
    local_store.put(f"landing/{DAY}/good.jsonl", lines(js()))
    path = os.path.join(local_store.root, "landing", DAY, ".good.jsonl.swp")
    with open(path, "wb") as f:
        f.write(lines(js()))
    results, _ = _drain(local_store, sqlite_ledger, NOW)
    assert sum(r.rows_read for r in results) == 1


def test_a_file_that_changes_between_ticks_is_curated_again_without_doubling(
    local_store, sqlite_ledger
):
    key = f"landing/{DAY}/env-01-20261124T1500Z.jsonl"
    first = [js(reading_ts=f"{DAY}T15:0{m}:00Z") for m in range(3)]
    local_store.put(key, lines(*first))
    results, cursor = _drain(local_store, sqlite_ledger, NOW)
    local_store.put(key, lines(*first, js(reading_ts=f"{DAY}T15:05:00Z"), "{broken"))
    again, _ = _drain(local_store, sqlite_ledger, NOW, cursor)
    (result,) = again
    assert (result.rows_curated, result.duplicates_dropped, result.rows_quarantined) == (1, 3, 1)
    assert len(_curated(local_store)) == 4
    assert [r["reason"] for r in _records(local_store)] == ["malformed_json"]


def test_the_data_graph_on_the_local_profile_holds_exactly_the_good_rows(tmp_path):
    """A manual run of the day (UI or `dg launch`) over every bad file: the blocking checks
    pass and DuckDB's tables hold exactly what curation kept and quarantined for the day."""
    import duckdb

    from data_assets import build_defs
    from resources.settings import load_settings

    settings = load_settings({"PICLUSTER_HOME": str(tmp_path)})
    store = LocalObjectStore(root=str(settings.object_store_root))
    for _, key, data, *_ in CASES:
        store.put(f"landing/{DAY}/{key}", data)
    defs = build_defs(settings)
    selection = [k for k in defs.resolve_all_asset_keys() if k.path[-1] != "mock_sensor_uploads"]
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key=DAY, asset_selection=selection, raise_on_error=False
    )
    assert result.success
    curated = {
        c.check_name: c.passed
        for c in result.get_asset_check_evaluations()
        if c.asset_key.path[-1] == "curated_sensor_readings"
    }
    assert curated == dict.fromkeys(
        ("schema_and_ranges", "unique_device_reading_ts", "reconciliation"), True
    )
    rows = _curated(store)
    records = [r for r in _records(store) if r["dt"] == DAY]
    assert rows and records
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        table = con.execute(
            "select source_object, source_line from sensors.sensor_readings where dt = ?", [DAY]
        ).fetchall()
        quarantine = con.execute(
            "select count(*) from sensors.sensor_quarantine where dt = ?", [DAY]
        ).fetchone()
    assert sorted(table) == sorted((r["source_object"], r["source_line"]) for r in rows)
    assert quarantine == (len(records),)


def test_every_quarantine_reason_is_in_the_documented_table():
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "sensor-data.md").read_text()
    assert [r for r in REASONS if f"| `{r}` |" not in doc] == []


@pytest.mark.parametrize(
    "folder", ["0001-01-01/00", "2026-11-24/99", "2026-02-30/10", "9999-12-31/23"]
)
def test_a_time_first_folder_that_is_no_time_does_not_stop_the_sensor(
    local_store, sqlite_ledger, folder
):
    key = f"landing/{folder}/env-01.jsonl"
    local_store.put(key, lines(js()))
    first = evaluate_tick(local_store, sqlite_ledger, LandingCursor(), NOW)
    assert first.cursor.after == key
    # The next tick lists after that cursor (no re-scan): it must not fail on the odd "hour".
    local_store.put(f"landing/{folder}/env-02.jsonl", lines(js(device_id="env-02")))
    tick = evaluate_tick(local_store, sqlite_ledger, first.cursor, NOW + timedelta(minutes=1))
    assert not tick.rescanned and tick.registered == 1


def test_a_fifo_in_landing_is_quarantined_without_blocking_the_sensor(local_store, sqlite_ledger):
    local_store.put(f"landing/{DAY}/good.jsonl", lines(js()))
    os.mkfifo(os.path.join(local_store.root, "landing", DAY, "pipe.jsonl"))
    results, _ = _drain(local_store, sqlite_ledger, NOW)
    records = _records(local_store)
    assert [(r["source_object"], r["reason"]) for r in records] == [
        (f"landing/{DAY}/pipe.jsonl", "object_unreadable")
    ]
    assert "not a regular file" in records[0]["detail"]
    assert len(_curated(local_store)) == 1


def test_an_unreadable_file_is_quarantined_then_curated_once_fixed(
    local_store, sqlite_ledger, monkeypatch
):
    from pathlib import Path

    # The tests run as root, whom file modes do not stop: the permission error is simulated.
    real = Path.read_bytes
    denied = {"yes"}

    def read_bytes(path):
        if path.name == "env-07-20261124T1000Z.jsonl" and denied:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    key = f"landing/{DAY}/env-07-20261124T1000Z.jsonl"
    local_store.put(key, lines(js(device_id="env-07"), js(device_id="env-07")))
    results, cursor = _drain(local_store, sqlite_ledger, NOW)
    (record,) = _records(local_store)
    assert (record["source_object"], record["reason"], record["device_id"]) == (
        key,
        "object_unreadable",
        "env-07",
    )
    assert "permission denied" in record["detail"]
    denied.clear()  # the owner fixes the file's mode
    results, _ = _drain(local_store, sqlite_ledger, NOW, cursor)
    assert sum(r.rows_curated for r in results) == 2
    assert len(_curated(local_store)) == 2
