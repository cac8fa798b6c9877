"""The reading parser: every accepted form, and every kind of bad input ends as a rejection."""

import gzip
from datetime import UTC, datetime

import pytest

from data_assets.readings import REASONS, parse_object

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
GOOD_JSON = (
    '{"device_id":"env-01","reading_ts":"2026-11-24T10:00:00Z",'
    '"temperature_c":21.5,"humidity_pct":45.0,"pressure_hpa":1013.2}'
)
CSV_HEADER = "device_id,reading_ts,temperature_c,humidity_pct,pressure_hpa"


def parse(key: str, text: str | bytes):
    data = text.encode() if isinstance(text, str) else text
    return parse_object(key, data, NOW)


def reasons(parsed) -> list[str]:
    return [r.reason for r in parsed.rejections]


def test_good_json_line_becomes_a_reading():
    parsed = parse("landing/a.jsonl", GOOD_JSON + "\n")
    assert parsed.rows_read == 1 and not parsed.rejections
    reading = parsed.readings[0]
    assert (reading.device_id, reading.day, reading.source_line) == ("env-01", "2026-11-24", 1)
    assert reading.reading_ms == int(datetime(2026, 11, 24, 10, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    "ts",
    [
        '"2026-11-24T10:00:00Z"',
        '"2026-11-24T11:00:00+01:00"',
        '"2026-11-24 10:00:00.000+00:00"',
        "1795514400",
        "1795514400000",
        '"1795514400"',
    ],
)
def test_accepted_timestamp_forms_all_mean_the_same_instant(ts):
    line = GOOD_JSON.replace('"2026-11-24T10:00:00Z"', ts)
    parsed = parse("landing/a.jsonl", line)
    assert not parsed.rejections, parsed.rejections
    assert parsed.readings[0].reading_ms == 1795514400000


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"device_id":"env-01",', "malformed_json"),
        ("[1, 2, 3]", "not_an_object"),
        (GOOD_JSON.replace('"humidity_pct":45.0,', ""), "missing_field"),
        (GOOD_JSON.replace("}", ',"firmware":"1.2"}'), "unexpected_field"),
        (GOOD_JSON.replace("45.0", "null"), "null_field"),
        (GOOD_JSON.replace('"env-01"', '"env 01!"'), "invalid_device_id"),
        (GOOD_JSON.replace('"env-01"', "17"), "invalid_device_id"),
        (GOOD_JSON.replace("2026-11-24T10:00:00Z", "yesterday"), "invalid_timestamp"),
        (
            GOOD_JSON.replace("2026-11-24T10:00:00Z", "2026-11-24T10:00:00"),
            "timestamp_without_timezone",
        ),
        (GOOD_JSON.replace("2026-11-24", "2019-11-24"), "timestamp_out_of_range"),
        (GOOD_JSON.replace("2026-11-24", "2027-11-24"), "timestamp_out_of_range"),
        (GOOD_JSON.replace("21.5", '"warm"'), "invalid_number"),
        (GOOD_JSON.replace("21.5", "true"), "invalid_number"),
        (GOOD_JSON.replace("21.5", "NaN"), "invalid_number"),
        (GOOD_JSON.replace("21.5", "150"), "out_of_range"),
        (GOOD_JSON.replace("45.0", "-1"), "out_of_range"),
        (GOOD_JSON.replace("1013.2", "5"), "out_of_range"),
        ("   ", "blank_line"),
    ],
)
def test_each_bad_json_line_is_rejected_with_its_reason_and_raw_text(line, reason):
    parsed = parse(
        "landing/a.jsonl", GOOD_JSON + "\n" + line + "\n" + GOOD_JSON.replace("10:00", "10:01")
    )
    assert parsed.rows_read == 3
    assert len(parsed.readings) == 2
    assert reasons(parsed) == [reason]
    rejection = parsed.rejections[0]
    assert (rejection.source_object, rejection.source_line, rejection.raw) == (
        "landing/a.jsonl",
        2,
        line,
    )
    assert reason in REASONS


def test_csv_with_header_crlf_bom_and_bad_rows():
    text = (
        "\ufeff" + CSV_HEADER + "\r\n"
        "env-02,2026-11-24T10:00:00Z,21.5,45,1013.2\r\n"
        "env-02,2026-11-24T10:01:00Z,21.5,45\r\n"
        "env-02,2026-11-24T10:02:00Z,21.5,45,1013.2,extra\r\n"
        'env-02,"2026-11-24T10:03:00Z",21.6,45,1013.1\r\n'
        "env-02,2026-11-24T10:04:00Z,,45,1013.1\r\n"
    )
    parsed = parse("landing/b.csv", text)
    assert parsed.format == "csv"
    assert parsed.rows_read == 5
    assert [r.source_line for r in parsed.readings] == [2, 5]
    assert reasons(parsed) == ["wrong_field_count", "wrong_field_count", "null_field"]


def test_csv_header_with_unknown_column_rejects_every_row_naming_it():
    parsed = parse(
        "landing/b.csv", CSV_HEADER + ",battery\nenv-02,2026-11-24T10:00:00Z,21,45,1013,3.1\n"
    )
    assert reasons(parsed) == ["unexpected_field"]
    assert parsed.rejections[0].detail == "battery"


def test_gzip_is_read_whatever_the_name():
    data = gzip.compress((GOOD_JSON + "\n").encode())
    assert len(parse("landing/a.jsonl.gz", data).readings) == 1
    assert len(parse("landing/a.jsonl", data).readings) == 1


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty_file"),
        (b"\n\n  \n", "empty_file"),
        ((CSV_HEADER + "\n").encode(), "empty_file"),
        (gzip.compress(b""), "empty_file"),
        (gzip.compress((GOOD_JSON + "\n").encode())[:20], "undecodable_file"),
        (b"\x1f\x8b\x08garbage", "undecodable_file"),
        (b"\x00\x01\x02binary\x00", "undecodable_file"),
        (GOOD_JSON.encode("utf-16"), "undecodable_file"),
        (b"\xff\xfe\xfa\n\xfb\xfc\n", "undecodable_file"),
    ],
)
def test_a_file_that_yields_no_rows_gets_exactly_one_record(data, reason):
    parsed = parse("landing/upload-without-extension", data)
    assert parsed.rows_read == 1
    assert reasons(parsed) == [reason]
    assert parsed.rejections[0].source_line == 0


def test_unknown_format_without_a_telling_name_is_one_record():
    parsed = parse("landing/notes.txt", "hello\nworld\n")
    assert reasons(parsed) == ["unsupported_format"]


def test_sniffs_format_when_the_name_does_not_tell():
    assert len(parse("landing/upload-17", GOOD_JSON).readings) == 1
    csv_text = CSV_HEADER + "\nenv-02,2026-11-24T10:00:00Z,21.5,45,1013.2\n"
    assert len(parse("landing/upload-18", csv_text).readings) == 1


def test_one_undecodable_line_does_not_spoil_the_file():
    data = (GOOD_JSON + "\n").encode() + b"\xff\xfe bad\n" + (GOOD_JSON + "\n").encode()
    parsed = parse("landing/a.jsonl", data)
    assert len(parsed.readings) == 2
    assert reasons(parsed) == ["undecodable_line"]
    assert parsed.rejections[0].source_line == 2


def test_rejection_keeps_the_day_of_a_readable_timestamp():
    parsed = parse("landing/a.jsonl", GOOD_JSON.replace("21.5", "150"))
    assert parsed.rejections[0].day == "2026-11-24"
    parsed = parse("landing/a.jsonl", '{"device_id":')
    assert parsed.rejections[0].day is None


def test_huge_raw_line_is_truncated_in_the_record():
    parsed = parse("landing/a.jsonl", "x" * 100_000)
    assert reasons(parsed) == ["malformed_json"]
    assert len(parsed.rejections[0].raw) < 5000


def test_a_row_that_breaks_the_parser_unexpectedly_is_quarantined_not_fatal(monkeypatch):
    import data_assets.readings as readings

    real = readings.validate

    def flaky(record, key, line, now=None):
        if line == 2:
            raise RuntimeError("parser bug")
        return real(record, key, line, now)

    monkeypatch.setattr(readings, "validate", flaky)
    parsed = parse("landing/a.jsonl", f"{GOOD_JSON}\n{GOOD_JSON}\n")
    assert len(parsed.readings) == 1
    assert reasons(parsed) == ["unreadable_row"]
    assert "parser bug" in parsed.rejections[0].detail
