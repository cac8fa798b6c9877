"""The SQL is written once in Trino's dialect; these pin what each warehouse is sent."""

import pytest

from data_assets.warehouse_tables import SQL_DIR
from resources.warehouse import ExternalTable, check_day, check_identifier, translate


def test_named_parameters_become_positional_in_order_of_appearance():
    text, names = translate(
        "SELECT a FROM t WHERE dt BETWEEN :since_day AND :day AND b < :since_day", "duckdb", "s"
    )
    assert text == "SELECT a FROM s.t WHERE dt BETWEEN ? AND ? AND b < ?"
    assert names == ("since_day", "day", "since_day")


def test_bare_tables_are_qualified_but_ctes_and_qualified_names_are_not():
    text, _ = translate(
        "WITH x AS (SELECT 1 AS a FROM t) SELECT * FROM x JOIN other.u ON true",
        "trino",
        "s",
        catalog="hive",
    )
    assert "FROM hive.s.t" in text
    assert "FROM x JOIN other.u" in text


def test_trino_table_properties_are_dropped_for_duckdb():
    ddl = (SQL_DIR / "sensor_readings_hourly.ddl.sql").read_text()
    duck, _ = translate(ddl, "duckdb", "sensors")
    trino, _ = translate(ddl, "trino", "sensors", catalog="hive")
    assert "PARTITIONED_BY" not in duck.upper() and "WITH" not in duck.upper()
    assert "PARTITIONED_BY=ARRAY['DT']" in trino.upper().replace(" ", "")
    assert duck.startswith("CREATE TABLE IF NOT EXISTS sensors.sensor_readings_hourly")


@pytest.mark.parametrize("path", sorted(SQL_DIR.glob("*.sql")), ids=lambda p: p.name)
def test_every_sql_file_translates_for_both_warehouses(path):
    for dialect, catalog in (("duckdb", None), ("trino", "hive")):
        text, names = translate(path.read_text(), dialect, "sensors", catalog)
        assert text.count("?") == len(names)
        assert "--" not in text and ":day" not in text


def test_positional_parameters_are_refused():
    with pytest.raises(ValueError, match="named parameters"):
        translate("SELECT * FROM t WHERE a = ?", "duckdb", "s")


@pytest.mark.parametrize("bad", ["Sensors", "1abc", "a-b", "a;drop", "", "a b"])
def test_identifiers_are_validated(bad):
    with pytest.raises(ValueError, match="not a valid SQL identifier"):
        check_identifier(bad, "schema")


@pytest.mark.parametrize("bad", ["2026-2-1", "2026-02-30", "2026-01-01' OR '1'='1", "today"])
def test_days_are_validated(bad):
    with pytest.raises(ValueError):
        check_day(bad)


def test_external_table_refuses_unsafe_prefixes():
    with pytest.raises(ValueError, match="prefix"):
        ExternalTable("t", "x'/", (("a", "varchar"),), "PARQUET")
    with pytest.raises(ValueError, match="prefix"):
        ExternalTable("t", "/abs/", (("a", "varchar"),), "PARQUET")
