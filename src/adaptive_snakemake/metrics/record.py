"""The metrics record, schema version 1: one JSON object per message and per log line.

The constants below define the fields and `record_problem` is the one check of them,
used by the reporter before sending, by the collector on every frame and by the readers
of log files. Nothing received is ever unpickled: a frame is bytes, parsed only by
`json.loads`, and kept only if `record_problem` finds nothing wrong.
"""

import json
import math

VERSION = 1
STATUSES = ("running", "saving", "done", "failed")
DEFAULT_MAX_RECORD_BYTES = 4096

# Every field, in column order. "v" is VERSION, "status" one of STATUSES, "loss" a finite
# number or null (adaptive's loss is infinite before the first points), "interval" (the
# reporter's log interval) a number > 0; the others by kind below.
FIELDS = (
    "v",
    "name",
    "attempt",
    "job_id",
    "host",
    "pid",
    "t",
    "elapsed",
    "npoints",
    "loss",
    "rate",
    "cpu",
    "rss_mb",
    "status",
    "dropped",  # records the reporter could not send
    "interval",
)
OPTIONAL = frozenset({"dropped", "interval"})
TEXT_FIELDS = (("name", 1024), ("job_id", 128), ("host", 255))  # with their longest length
INTEGER_FIELDS = (("attempt", 1), ("pid", 0), ("npoints", 0), ("dropped", 0))  # with minimum
NON_NEGATIVE_FIELDS = ("t", "elapsed", "rate", "cpu", "rss_mb")  # finite numbers >= 0

ALLOWED = frozenset(FIELDS)
REQUIRED = ALLOWED - OPTIONAL
_INF = math.inf


class RecordError(ValueError):
    """Not a valid record. `reason`: "too_large", "not_json" or "invalid"."""

    def __init__(self, message: str, reason: str = "invalid"):
        super().__init__(message)
        self.reason = reason


def _reject_constant(name):
    # NaN and +-Infinity are not JSON; Python's json would accept them.
    raise ValueError(f"{name} is not valid JSON")


_decode = json.JSONDecoder(parse_constant=_reject_constant).decode


def record_problem(o) -> str | None:
    """Why `o` is not a valid record, or None if it is one.

    The collector's hot path, hence written out rather than looped over a table of checks
    (3x faster). Integers may be written 3.0 (as JSON Schema's "integer"), bools are never
    numbers, and `-_INF < x < _INF` is False for NaN and the infinities.
    """
    if type(o) is not dict:
        return "a record must be a JSON object"
    keys = o.keys()
    if not keys <= ALLOWED:
        return f"unknown field(s): {', '.join(sorted(map(str, keys - ALLOWED)))}"
    if not REQUIRED <= keys:
        return f"missing field(s): {', '.join(sorted(REQUIRED - keys))}"
    x = o["v"]
    if not (x == VERSION and (type(x) is int or type(x) is float)):
        return f"v must be {VERSION}"
    for key, longest in TEXT_FIELDS:
        x = o[key]
        if type(x) is not str or not 0 < len(x) <= longest:
            return f"{key} must be a string of 1 to {longest} characters"
    for key, least in INTEGER_FIELDS:
        x = o.get(key, least)  # an absent optional field passes
        kind = type(x)
        if not ((kind is int or (kind is float and x.is_integer())) and x >= least):
            return f"{key} must be an integer >= {least}"
    for key in NON_NEGATIVE_FIELDS:
        x = o[key]
        kind = type(x)
        if not ((kind is float or kind is int) and 0 <= x < _INF):
            return f"{key} must be a finite number >= 0"
    x = o["loss"]
    if x is not None:
        kind = type(x)
        if not ((kind is float or kind is int) and -_INF < x < _INF):
            return "loss must be a finite number or null"
    x = o["status"]
    if type(x) is not str or x not in STATUSES:
        return f"status must be one of {', '.join(STATUSES)}"
    x = o.get("interval", 1.0)
    kind = type(x)
    if not ((kind is float or kind is int) and 0 < x < _INF):
        return "interval must be a finite number > 0"
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
        raise RecordError(f"record of {len(frame)} bytes exceeds {max_bytes}", "too_large")
    try:
        obj = _decode(frame.decode())
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise RecordError(f"not JSON: {exc}", "not_json") from None
    problem = record_problem(obj)
    if problem is not None:
        raise RecordError(problem)
    return obj


def encode_record(record: dict, ensure_ascii: bool = True) -> bytes:
    """Compact one-line UTF-8 JSON of a valid record (non-finite numbers are refused).

    `ensure_ascii=False` writes non-ASCII characters as UTF-8 rather than as \\uXXXX escapes:
    up to 3 times shorter for such names (used when a record must shrink to fit).
    """
    text = json.dumps(record, separators=(",", ":"), allow_nan=False, ensure_ascii=ensure_ascii)
    return text.encode()
