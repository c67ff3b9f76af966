"""The metrics record, schema version 1: one JSON object per message and per log line.

The field table below is the single definition; `RECORD_SCHEMA` (JSON Schema) and
`check_record` (a hand-written check, ~10x faster than jsonschema, same verdicts)
are both derived from it. Nothing received is ever unpickled: a frame is bytes,
parsed only by `json.loads`, and kept only if it passes `check_record`.
"""

import json
import math
from dataclasses import dataclass

VERSION = 1
STATUSES = ("running", "saving", "done", "failed")
DEFAULT_MAX_RECORD_BYTES = 4096


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # "int", "number", "string", "status", "version"
    required: bool = True
    minimum: float | None = None
    exclusive_minimum: bool = False
    max_length: int | None = None
    nullable: bool = False


FIELDS = (
    Field("v", "version"),
    Field("name", "string", max_length=1024),
    Field("attempt", "int", minimum=1),
    Field("job_id", "string", max_length=128),
    Field("host", "string", max_length=255),
    Field("pid", "int", minimum=0),
    Field("t", "number", minimum=0),
    Field("elapsed", "number", minimum=0),
    Field("npoints", "int", minimum=0),
    Field("loss", "number", nullable=True),  # null while adaptive's loss is still infinite
    Field("rate", "number", minimum=0),
    Field("cpu", "number", minimum=0),
    Field("rss_mb", "number", minimum=0),
    Field("status", "status"),
    Field("dropped", "int", required=False, minimum=0),  # records the reporter could not send
    Field("interval", "number", required=False, minimum=0, exclusive_minimum=True),  # log interval
)

REQUIRED = frozenset(f.name for f in FIELDS if f.required)
ALLOWED = frozenset(f.name for f in FIELDS)


def _schema_of(field: Field) -> dict:
    if field.kind == "version":
        return {"const": VERSION}
    if field.kind == "status":
        return {"enum": list(STATUSES)}
    if field.kind == "string":
        return {"type": "string", "minLength": 1, "maxLength": field.max_length}
    schema = {"type": "integer" if field.kind == "int" else "number"}
    if field.minimum is not None:
        schema["exclusiveMinimum" if field.exclusive_minimum else "minimum"] = field.minimum
    if field.nullable:
        schema = {"anyOf": [schema, {"type": "null"}]}
    return schema


RECORD_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "adaptive-snakemake metrics record",
    "type": "object",
    "properties": {f.name: _schema_of(f) for f in FIELDS},
    "required": sorted(REQUIRED),
    "additionalProperties": False,
}


class RecordError(ValueError):
    """A record that does not match schema version 1."""


def _reject_constant(name):
    # NaN and +-Infinity are not JSON; Python's json would accept them.
    raise ValueError(f"{name} is not valid JSON")


_decode = json.JSONDecoder(parse_constant=_reject_constant).decode


def _check_int(value, field):
    # JSON Schema's "integer": 3 and 3.0 both qualify (bools never do).
    kind = type(value)
    if kind is not int and not (kind is float and value.is_integer()):
        return "an integer"
    if field.minimum is not None and value < field.minimum:
        return f"an integer >= {field.minimum:g}"
    return None


def _check_number(value, field):
    if value is None and field.nullable:
        return None
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):  # 1e999 parses to inf
            return "a finite number"
    elif kind is not int:
        return "a number"
    if field.minimum is not None:
        if field.exclusive_minimum and value <= field.minimum:
            return f"a number > {field.minimum:g}"
        if value < field.minimum:
            return f"a number >= {field.minimum:g}"
    return None


def _check_string(value, field):
    if type(value) is not str or not value or len(value) > field.max_length:
        return f"a string of 1 to {field.max_length} characters"
    return None


def _check_status(value, field):
    return None if type(value) is str and value in STATUSES else f"one of {', '.join(STATUSES)}"


def _check_version(value, field):
    return None if type(value) in (int, float) and value == VERSION else f"{VERSION}"


_KIND_CHECKS = {
    "int": _check_int,
    "number": _check_number,
    "string": _check_string,
    "status": _check_status,
    "version": _check_version,
}
_FIELD_CHECKS = tuple((f.name, _KIND_CHECKS[f.kind], f) for f in FIELDS)


_INF = math.inf


def is_valid_record(o) -> bool:
    """The collector's hot path: the checks of the field table, written out inline.

    Same verdict as `record_problem(o) is None` (a test compares them on random records).
    `-_INF < x < _INF` is False for NaN and the infinities.
    """
    if type(o) is not dict:
        return False
    keys = o.keys()
    if not (keys <= ALLOWED and REQUIRED <= keys):
        return False
    x = o["v"]
    if not (x == 1 and (type(x) is int or type(x) is float)):
        return False
    x = o["name"]
    if type(x) is not str or not 0 < len(x) <= 1024:
        return False
    x = o["job_id"]
    if type(x) is not str or not 0 < len(x) <= 128:
        return False
    x = o["host"]
    if type(x) is not str or not 0 < len(x) <= 255:
        return False
    x = o["status"]
    if type(x) is not str or x not in STATUSES:
        return False
    for key, low in _INT_FIELDS:
        x = o.get(key, low)  # an absent optional field passes
        kind = type(x)
        if not ((kind is int or (kind is float and x.is_integer())) and x >= low):
            return False
    for key in _NON_NEGATIVE_NUMBERS:
        x = o[key]
        kind = type(x)
        if not ((kind is float or kind is int) and 0 <= x < _INF):
            return False
    x = o["loss"]
    if x is not None:
        kind = type(x)
        if not ((kind is float or kind is int) and -_INF < x < _INF):
            return False
    x = o.get("interval", 1.0)
    kind = type(x)
    return (kind is float or kind is int) and 0 < x < _INF


_INT_FIELDS = (("attempt", 1), ("pid", 0), ("npoints", 0), ("dropped", 0))
_NON_NEGATIVE_NUMBERS = ("t", "elapsed", "rate", "cpu", "rss_mb")


def record_problem(obj) -> str | None:
    """Why `obj` is not a valid record, or None if it is one."""
    if type(obj) is not dict:
        return "a record must be a JSON object"
    keys = obj.keys()
    if not keys <= ALLOWED:
        return f"unknown field(s): {', '.join(sorted(map(str, keys - ALLOWED)))}"
    if not REQUIRED <= keys:
        return f"missing field(s): {', '.join(sorted(REQUIRED - keys))}"
    for name, check, field in _FIELD_CHECKS:
        if name in obj:
            expected = check(obj[name], field)
            if expected is not None:
                return f"{name} must be {expected}"
    return None


def check_record(obj) -> dict:
    """`obj` if it is a valid record; RecordError otherwise."""
    problem = record_problem(obj)
    if problem is not None:
        raise RecordError(problem)
    return obj


def parse_record(frame: bytes, max_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> dict:
    """The record in one received frame; RecordError if too large, not JSON or invalid."""
    if len(frame) > max_bytes:
        raise RecordError(f"record of {len(frame)} bytes exceeds {max_bytes}")
    try:
        obj = _decode(frame.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RecordError(f"not JSON: {exc}") from None
    return check_record(obj)


def encode_record(record: dict) -> bytes:
    """Compact one-line UTF-8 JSON of a valid record (non-finite numbers are refused)."""
    return json.dumps(record, separators=(",", ":"), allow_nan=False).encode()
