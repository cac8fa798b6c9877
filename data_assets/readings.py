"""Parsing and validating device uploads: bytes of one landing object -> readings and rejections.

Pure functions, no I/O, no Dagster. The accepted format is documented in `docs/sensor-data.md`;
every reason a row can be rejected for is in `REASONS`. A row is one physical line of the file
(after the CSV header); a file that yields no rows at all (empty, header only, not decodable, not
a format we read) yields exactly one rejection for the whole file, with line number 0. So every
file produces at least one row or one rejection: nothing is skipped silently.
"""

import csv
import json
import math
import re
import zlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

FIELDS = ("device_id", "reading_ts", "temperature_c", "humidity_pct", "pressure_hpa")
MEASURES = ("temperature_c", "humidity_pct", "pressure_hpa")
# Physical ranges of a BME280-class sensor (its datasheet's operating ranges).
RANGES = {
    "temperature_c": (-40.0, 85.0),
    "humidity_pct": (0.0, 100.0),
    "pressure_hpa": (300.0, 1100.0),
}
# Readings before the platform's first day or more than a day ahead of the clock are device
# clock faults, not data.
EARLIEST = datetime(2026, 1, 1, tzinfo=UTC)
FUTURE_TOLERANCE = timedelta(days=1)
MAX_DECOMPRESSED = 256 * 1024 * 1024
MAX_GZIP_LAYERS = 3  # a file gzipped twice by a device and its uploader is still read
DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
# Numeric text as devices and CSV writers produce it: ASCII digits only. Python's float() also
# takes '1_013', full-width or Arabic-Indic digits, which no device means as a reading.
NUMBER_TEXT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", re.ASCII)
_is_number_text = NUMBER_TEXT.fullmatch
EPOCH_TEXT = re.compile(r"-?\d+(\.\d+)?", re.ASCII)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

REASONS = {
    "empty_file": "the file holds no readings (no bytes, only blank lines or only a CSV header)",
    "undecodable_file": "the file is not UTF-8 text (binary, or a corrupt or oversized gzip)",
    "unsupported_format": "neither JSON Lines nor CSV with a header",
    "undecodable_line": "the line is not valid UTF-8",
    "blank_line": "an empty line between readings",
    "malformed_json": "the line is not valid JSON",
    "not_an_object": "the JSON line is not an object",
    "malformed_csv": "the CSV line cannot be parsed (e.g. a quote left open)",
    "missing_header": "the CSV file's first line is not a header naming the columns",
    "wrong_field_count": "the CSV line has more or fewer values than the header",
    "missing_field": "a required field is absent",
    "null_field": "a required field is null or empty",
    "unexpected_field": "a field that is not part of the format",
    "duplicate_field": "a field appears twice in the row (JSON key or CSV column)",
    "invalid_device_id": "device_id is not 1-64 letters, digits or _.:- characters",
    "invalid_timestamp": "reading_ts is not an ISO-8601 time with zone or a Unix epoch",
    "timestamp_without_timezone": "reading_ts has no zone (Z or +hh:mm) so its UTC time is unknown",
    "timestamp_out_of_range": "reading_ts is before 2026-01-01 or more than a day in the future",
    "invalid_number": "a measure is not a finite number",
    "out_of_range": "a measure is outside the sensor's physical range",
    "unreadable_row": "the row broke the parser in a way no other reason covers (see detail)",
    "object_missing": "the object was handed over but deleted before it could be read",
    "object_unreadable": "the object exists but cannot be read (permissions, not a regular file)",
}

_EPOCH_DAY = date(1970, 1, 1).toordinal()
_DAY_CACHE: dict[int, str] = {}


def day_of_ms(ms: int) -> str:
    """The UTC day ('YYYY-MM-DD') of a Unix time in milliseconds."""
    days = ms // 86_400_000
    text = _DAY_CACHE.get(days)
    if text is None:
        text = date.fromordinal(_EPOCH_DAY + days).isoformat()
        _DAY_CACHE[days] = text
    return text


@dataclass(slots=True)
class Reading:
    device_id: str
    reading_ms: int  # Unix time in milliseconds, UTC
    temperature_c: float
    humidity_pct: float
    pressure_hpa: float
    source_object: str
    source_line: int

    @property
    def day(self) -> str:
        return day_of_ms(self.reading_ms)


@dataclass(slots=True)
class Rejection:
    source_object: str
    source_line: int  # 1-based physical line; 0 for the whole file
    reason: str
    detail: str
    raw: str
    day: str | None = None  # the reading's UTC day when its timestamp could be read
    device_id: str | None = None  # when the row names a well-formed one

    def record(self) -> dict:
        return {
            "source_object": self.source_object,
            "source_line": self.source_line,
            "reason": self.reason,
            "detail": self.detail,
            "raw": self.raw,
        }


@dataclass
class ParsedObject:
    key: str
    format: str  # jsonl | csv | unknown
    rows_read: int = 0
    readings: list[Reading] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


class _Reject(Exception):
    def __init__(self, reason: str, detail: str, day: str | None = None):
        self.reason, self.detail, self.day = reason, detail, day


def _raw(text: str, limit: int = 4096) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more chars]"


def _detail(text: str) -> str:
    # A detail quotes the offending value, which can be a 10 MB string: the warehouse reads
    # quarantine records as JSON objects of bounded size. JSON text may also hold a lone
    # surrogate (`"\ud800"` in a key), which no UTF-8 record can carry: it is written escaped.
    return _raw(text, 300).encode("utf-8", "backslashreplace").decode()


def _decompress(data: bytes) -> bytes:
    """Every gzip member (concatenated uploads are valid gzip), at most MAX_DECOMPRESSED."""
    out: list[bytes] = []
    budget = MAX_DECOMPRESSED
    while data:
        d = zlib.decompressobj(wbits=31)  # gzip header
        try:
            chunk = d.decompress(data, budget + 1)
        except zlib.error as exc:
            where = "" if not out else f" after {len(out)} gzip member(s)"
            raise _Reject("undecodable_file", f"corrupt gzip{where}: {exc}") from None
        if len(chunk) > budget or d.unconsumed_tail:
            raise _Reject("undecodable_file", f"gzip expands beyond {MAX_DECOMPRESSED} bytes")
        if not d.eof:
            raise _Reject("undecodable_file", "gzip stream is truncated")
        out.append(chunk)
        budget -= len(chunk)
        # Zero bytes after the last member are block padding (tape, some uploaders): gzip itself
        # ignores them.
        data = d.unused_data.lstrip(b"\x00")
    return b"".join(out)


def parse_timestamp(value: object, now: datetime | None = None) -> int:
    """A reading time -> Unix ms (UTC). Accepts ISO-8601 with a zone, or a Unix epoch in seconds
    or milliseconds (number or digits)."""
    if isinstance(value, bool) or value is None:
        raise _Reject("invalid_timestamp", f"reading_ts={value!r}")
    epoch: float | None = None
    try:
        if isinstance(value, int | float):
            epoch = float(value)
        elif isinstance(value, str):
            text = value.strip()
            if EPOCH_TEXT.fullmatch(text):
                epoch = float(text)
            else:
                try:
                    ts = datetime.fromisoformat(text)
                except ValueError:
                    raise _Reject("invalid_timestamp", _detail(f"reading_ts={value!r}")) from None
                if ts.tzinfo is None or ts.utcoffset() is None:
                    raise _Reject("timestamp_without_timezone", _detail(f"reading_ts={value!r}"))
                # Integer arithmetic: the same instant gives the same ms in every form (a float
                # timestamp can lose the last millisecond and miss a duplicate).
                return _check_ts_range((ts - _EPOCH) // _MS, value, now)
        else:
            raise _Reject("invalid_timestamp", _detail(f"reading_ts={value!r}"))
    except OverflowError:  # an integer beyond any float: far outside the accepted range
        raise _Reject("timestamp_out_of_range", _detail(f"reading_ts={value!r}")) from None
    if not math.isfinite(epoch):
        raise _Reject("invalid_timestamp", _detail(f"reading_ts={value!r}"))
    # Seconds until the year 5138; larger values are milliseconds.
    ms = int(round(epoch * 1000)) if abs(epoch) < 1e11 else int(round(epoch))
    return _check_ts_range(ms, value, now)


def _check_ts_range(ms: int, value: object, now: datetime | None) -> int:
    latest = (now or datetime.now(UTC)) + FUTURE_TOLERANCE
    if not EARLIEST.timestamp() * 1000 <= ms <= latest.timestamp() * 1000:
        # No day: such a row is quarantined with its file's other unplaceable rows.
        raise _Reject("timestamp_out_of_range", _detail(f"reading_ts={value!r}"))
    return ms


def _number(name: str, value: object, day: str) -> float:
    low, high = RANGES[name]
    kind = type(value)  # exact types: a bool is an int subclass and no number here
    if kind is float:
        number = value
    elif kind is int:
        try:
            number = float(value)
        except OverflowError:  # an integer with hundreds of digits
            detail = _detail(f"{name}={value} outside [{low:g}, {high:g}]")
            raise _Reject("out_of_range", detail, day) from None
    elif kind is str and _is_number_text(value.strip()):
        number = float(value)
    else:
        raise _Reject("invalid_number", _detail(f"{name}={value!r}"), day)
    if not math.isfinite(number):
        raise _Reject("invalid_number", _detail(f"{name}={value!r}"), day)
    if not low <= number <= high:
        raise _Reject("out_of_range", f"{name}={number:g} outside [{low:g}, {high:g}]", day)
    return number


def validate(record: dict, key: str, line: int, now: datetime | None = None) -> Reading:
    """A decoded row (field -> value) -> a Reading, or raises _Reject with the first problem."""
    missing = [f for f in FIELDS if f not in record]
    if missing:
        raise _Reject("missing_field", ", ".join(missing))
    extra = [str(f) for f in record if f not in FIELDS]
    if extra:
        raise _Reject("unexpected_field", _detail(", ".join(sorted(extra))))
    nulls = [f for f in FIELDS if record[f] is None or record[f] == ""]
    if nulls:
        raise _Reject("null_field", ", ".join(nulls))
    device_id = record["device_id"]
    if not isinstance(device_id, str) or not DEVICE_ID.fullmatch(device_id):
        raise _Reject("invalid_device_id", _detail(f"device_id={device_id!r}"))
    ms = parse_timestamp(record["reading_ts"], now)
    day = day_of_ms(ms)
    return Reading(
        device_id,
        ms,
        _number("temperature_c", record["temperature_c"], day),
        _number("humidity_pct", record["humidity_pct"], day),
        _number("pressure_hpa", record["pressure_hpa"], day),
        key,
        line,
    )


def _format_for(key: str, first_line: str) -> str:
    name = key.lower().removesuffix(".gz")
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith(".csv"):
        return "csv"
    stripped = first_line.lstrip("\ufeff").strip()
    if stripped.startswith("{"):
        return "jsonl"
    if "device_id" in stripped and "," in stripped:
        return "csv"
    return "unknown"


def parse_object(key: str, data: bytes, now: datetime | None = None) -> ParsedObject:
    """Every row of one landing object, as readings or rejections (never raises on bad input)."""
    result = ParsedObject(key, "unknown")

    def whole_file(reason: str, detail: str, raw: bytes | str) -> ParsedObject:
        text = raw if isinstance(raw, str) else raw[:512].decode("utf-8", "backslashreplace")
        result.rows_read += 1
        result.rejections.append(Rejection(key, 0, reason, detail, _raw(text)))
        return result

    raw_data = data
    try:
        for _ in range(MAX_GZIP_LAYERS):
            if data[:2] != b"\x1f\x8b":
                break
            data = _decompress(data)
        else:
            if data[:2] == b"\x1f\x8b":
                raise _Reject("undecodable_file", f"gzip nested over {MAX_GZIP_LAYERS} levels")
    except _Reject as exc:
        return whole_file(exc.reason, exc.detail, raw_data)
    except (OSError, EOFError, zlib.error) as exc:
        return whole_file("undecodable_file", f"corrupt gzip: {exc}", raw_data)
    if not data.strip():
        return whole_file("empty_file", f"{len(data)} bytes, no readings", data)

    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last line
    # None for a line that is not text: not UTF-8, or holding NUL bytes (binary junk, UTF-16).
    texts: list[str | None] = []
    for raw_line in lines:
        try:
            text = raw_line.removesuffix(b"\r").decode("utf-8")
        except UnicodeDecodeError:
            text = None
        texts.append(None if text is None or "\x00" in text else text)
    if all(t is None for t, raw_line in zip(texts, lines, strict=True) if raw_line.strip()):
        # No text line at all: one record for the file, not one per line of binary.
        what = "binary content (NUL bytes)" if b"\x00" in data else "not UTF-8 text"
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            what = "UTF-16 or UTF-32 text (byte-order mark); devices must upload UTF-8"
        return whole_file("undecodable_file", what, data)

    first = next((t for t in texts if t is not None and t.strip()), "")
    result.format = _format_for(key, first)
    if result.format == "unknown":
        return whole_file("unsupported_format", "neither JSON Lines nor CSV with a header", first)

    header: list[str] | None = None
    header_problem: _Reject | None = None
    start = 0
    if result.format == "csv":
        # The header is the first non-blank line; blank lines before it are still rows.
        for index, text in enumerate(texts):
            if text is not None and text.strip():
                header, header_problem = _csv_header(text.lstrip("\ufeff"))
                start = index
                break
    # A first line that is not a header may be a reading: it is a row like the others.
    header_is_data = header_problem is not None and header_problem.reason == "missing_header"
    for index, text in enumerate(texts):
        if header is not None and index == start and not header_is_data:
            continue
        line_no = index + 1
        result.rows_read += 1
        record = None
        try:
            if text is None:
                detail = "NUL bytes" if b"\x00" in lines[index] else "not UTF-8"
                raise _Reject("undecodable_line", detail)
            if not text.strip():
                raise _Reject("blank_line", "empty line")
            if header_problem is not None:
                # Without a header no line can be read, including the first (it may be data).
                raise header_problem
            if result.format == "jsonl":
                record = _json_record(text.lstrip("\ufeff") if index == 0 else text)
            else:
                record = _csv_record(text, header or [])
            result.readings.append(validate(record, key, line_no, now))
        except _Reject as exc:
            raw = text if text is not None else lines[index].decode("utf-8", "backslashreplace")
            device = record.get("device_id") if isinstance(record, dict) else None
            result.rejections.append(
                Rejection(
                    key,
                    line_no,
                    exc.reason,
                    exc.detail,
                    _raw(raw),
                    exc.day,
                    device if isinstance(device, str) and DEVICE_ID.fullmatch(device) else None,
                )
            )
        except Exception as exc:  # a row must never fail the run: quarantine it and say why
            raw = text if text is not None else lines[index].decode("utf-8", "backslashreplace")
            result.rejections.append(
                Rejection(key, line_no, "unreadable_row", f"{type(exc).__name__}: {exc}", _raw(raw))
            )
    if result.rows_read == 0:
        return whole_file("empty_file", "only a CSV header, no readings", first)
    return result


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    record = dict(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        twice = sorted({k for k, _ in pairs if k in seen or seen.add(k)})
        raise _DuplicateKey(", ".join(twice))
    return record


def _json_record(text: str) -> dict:
    # json.loads would keep the last of two equal keys: which value the device meant is unknown.
    try:
        record = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKey as exc:
        raise _Reject("duplicate_field", _detail(str(exc))) from None
    except (ValueError, RecursionError) as exc:
        raise _Reject("malformed_json", _detail(str(exc))) from None
    if not isinstance(record, dict):
        raise _Reject("not_an_object", f"a JSON {type(record).__name__}")
    return record


def _csv_values(text: str) -> list[str]:
    # strict: a quote left open (a value with a line break in it) is an error, not a value
    # that silently swallows the rest of the line.
    try:
        return next(csv.reader([text], strict=True))
    except (csv.Error, StopIteration) as exc:
        raise _Reject("malformed_csv", _detail(str(exc))) from None


def _csv_header(text: str) -> tuple[list[str], _Reject | None]:
    """The header's column names, and why no row can be read under it (or None)."""
    try:
        names = [h.strip() for h in _csv_values(text)]
    except _Reject as exc:
        return [], _Reject("missing_header", f"the first line is not a CSV header: {exc.detail}")
    if not set(names) & set(FIELDS):
        return names, _Reject(
            "missing_header",
            _detail(
                f"the first line names none of the columns {', '.join(FIELDS)} "
                "(names are case-sensitive)"
            ),
        )
    seen: set[str] = set()
    twice = sorted({n for n in names if n and (n in seen or seen.add(n))})
    if twice:
        return names, _Reject(
            "duplicate_field", _detail(f"CSV header names {', '.join(twice)} twice")
        )
    return names, None


def _csv_record(text: str, header: list[str]) -> dict:
    values = _csv_values(text)
    if len(values) != len(header):
        raise _Reject("wrong_field_count", f"{len(values)} values for {len(header)} columns")
    record = {}
    for number, (name, value) in enumerate(zip(header, values, strict=True), 1):
        if not name:
            # A trailing comma (an export's empty last column) carries nothing; a value under a
            # column without a name is a field nobody can place.
            if value.strip():
                raise _Reject("unexpected_field", _detail(f"column {number} has no name"))
            continue
        record[name] = value.strip()
    return record
