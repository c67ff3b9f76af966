"""The metrics record: one check, `record_problem`, of every field."""

import json
import pickle
import random

import pytest

from adaptive_snakemake.metrics.record import (
    FIELDS,
    RecordError,
    check_record,
    encode_record,
    parse_record,
    record_problem,
)


def valid_record(**changes):
    record = {
        "v": 1,
        "name": "h/pow~1/a~0.5",
        "attempt": 1,
        "job_id": "123456",
        "host": "node001",
        "pid": 4242,
        "t": 1_700_000_000.5,
        "elapsed": 12.5,
        "npoints": 1234,
        "loss": 0.0123,
        "rate": 10.5,
        "cpu": 190.5,
        "rss_mb": 123.4,
        "status": "running",
    }
    record.update(changes)
    return record


ODD_VALUES = [
    0,
    1,
    -1,
    2,
    3.0,
    0.5,
    -0.5,
    1e300,
    True,
    False,
    None,
    "",
    "x",
    "running",
    "done",
    "saving",
    "failed",
    "1",
    "x" * 129,
    "x" * 256,
    "y" * 1025,
    [],
    [1],
    {},
    {"a": 1},
]


# Per field: values a record may hold there, and values it may not.
ACCEPTED_AND_REFUSED = {
    "v": ([1, 1.0], [0, 2, True, "1", None, 1.5]),
    "name": (["x", "h/pow~1/a~0.5", "y" * 1024], ["", "y" * 1025, 1, None, [], {}]),
    "attempt": ([1, 2, 3.0, 10**9], [0, -1, 0.5, True, False, None, "1", float("inf")]),
    "job_id": (["1", "x" * 128], ["", "x" * 129, 1, None]),
    "host": (["node001", "x" * 255], ["", "x" * 256, 1, None]),
    "pid": ([0, 1, 3.0], [-1, 0.5, True, None, "1"]),
    "t": ([0, 0.5, 1e300, 1e-300], [-0.5, -1, True, None, "1", float("nan"), float("inf")]),
    "elapsed": ([0, 12.5, 7], [-0.5, True, None, "12", float("inf")]),
    "npoints": ([0, 1, 2.0], [-1, 0.5, True, None, "12"]),
    "loss": ([None, 0, -0.5, 1e300], [True, "1", float("nan"), float("inf"), -float("inf")]),
    "rate": ([0, 2.5], [-0.5, False, None, [], float("inf")]),
    "cpu": ([0, 190.5], [-1, True, None, {}, float("nan")]),
    "rss_mb": ([0, 123.4], [-1, True, None, "x"]),
    "status": (["running", "saving", "done", "failed"], ["exploded", "", 1, None, ["done"]]),
    "dropped": ([0, 3, 4.0], [-1, 0.5, True, None]),
    "interval": ([30.0, 1, 1e-300], [0, -1, True, None, float("inf"), float("nan")]),
}


def test_every_field_has_examples():
    assert set(ACCEPTED_AND_REFUSED) == set(FIELDS)


def test_valid_record_passes_the_check():
    record = valid_record(dropped=3, interval=30.0, loss=None)
    assert record_problem(record) is None
    assert check_record(record) is record


@pytest.mark.parametrize("field", sorted(ACCEPTED_AND_REFUSED))
def test_each_field_accepts_and_refuses_what_the_schema_says(field):
    accepted, refused = ACCEPTED_AND_REFUSED[field]
    for value in accepted:
        assert record_problem(valid_record(**{field: value})) is None, value
    for value in refused:
        problem = record_problem(valid_record(**{field: value}))
        assert problem is not None and problem.startswith(f"{field} must be"), value


def test_unknown_missing_and_optional_fields():
    assert "unknown field(s): extra" in record_problem(valid_record(extra=1))
    for name in FIELDS:
        record = valid_record(dropped=1, interval=1.0)
        del record[name]
        if name in ("dropped", "interval"):
            assert record_problem(record) is None
        else:
            assert record_problem(record) == f"missing field(s): {name}"
    for obj in (None, [], "running", 1, [valid_record()]):
        assert record_problem(obj) == "a record must be a JSON object"


def test_any_json_value_in_any_field_gets_a_verdict_never_an_exception():
    for field in FIELDS:
        for value in ODD_VALUES:
            problem = record_problem(valid_record(**{field: value}))
            assert problem is None or problem.startswith(f"{field} must be")


def test_random_mutations_are_judged_field_by_field():
    """Each mutation is one of the examples above; the record is valid iff all are accepted."""
    rng = random.Random(1)
    for _ in range(20_000):
        record, verdicts = valid_record(), {}
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            field = rng.choice(FIELDS)
            accepted, refused = ACCEPTED_AND_REFUSED[field]
            verdicts[field] = rng.random() < 0.5
            record[field] = rng.choice(accepted if verdicts[field] else refused)
        assert (record_problem(record) is None) == all(verdicts.values()), record


def test_non_json_numbers_and_infinities_are_refused():
    # JSON Schema cannot say "finite"; the hand check is stricter here on purpose.
    for text in ['"loss": NaN', '"loss": Infinity', '"loss": -Infinity', '"rate": 1e999']:
        frame = json.dumps(valid_record())[:-1].encode() + b", " + text.encode() + b"}"
        with pytest.raises(RecordError):
            parse_record(frame)


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\xff\xfe garbage",
        b"[1, 2, 3]",
        b'"running"',
        b"null",
        b"[" * 3000 + b"]" * 3000,
        pickle.dumps(valid_record()),
        json.dumps(valid_record(npoints="12")).encode(),
        json.dumps(valid_record(status="exploded")).encode(),
        json.dumps(valid_record(attempt=0)).encode(),
        json.dumps(valid_record(v=2)).encode(),
        json.dumps(valid_record(extra=1)).encode(),
        json.dumps(valid_record(name="n" * 5000)).encode(),
    ],
)
def test_malformed_frames_raise_record_error(frame):
    with pytest.raises(RecordError):
        parse_record(frame, max_bytes=8192)


def test_size_limit_applies_before_parsing():
    frame = encode_record(valid_record(name="n" * 1000))
    assert parse_record(frame, max_bytes=len(frame))["name"] == "n" * 1000
    with pytest.raises(RecordError, match="exceeds"):
        parse_record(frame, max_bytes=len(frame) - 1)


def test_encode_is_one_compact_line_and_round_trips():
    record = valid_record(name="a\nb\u2028c")
    frame = encode_record(record)
    assert b"\n" not in frame and b" " not in frame
    assert parse_record(frame) == record
    with pytest.raises(ValueError):
        encode_record(valid_record(loss=float("inf")))


def test_check_record_names_the_problem():
    with pytest.raises(RecordError, match="npoints"):
        check_record(valid_record(npoints=-1))
    with pytest.raises(RecordError, match="missing field"):
        check_record({k: v for k, v in valid_record().items() if k != "host"})
