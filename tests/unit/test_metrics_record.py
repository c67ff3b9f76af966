"""The metrics record schema: the fast hand check agrees with JSON Schema."""

import json
import pickle
import random

import jsonschema
import pytest

from adaptive_snakemake.metrics.record import (
    FIELDS,
    RECORD_SCHEMA,
    RecordError,
    check_record,
    encode_record,
    is_valid_record,
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


def test_valid_record_passes_both_checks():
    record = valid_record(dropped=3, interval=30.0, loss=None)
    assert record_problem(record) is None
    jsonschema.validate(record, RECORD_SCHEMA)


def test_hand_check_agrees_with_json_schema_on_random_mutations():
    validator = jsonschema.Draft202012Validator(RECORD_SCHEMA)
    rng = random.Random(1)
    names = [f.name for f in FIELDS]
    disagreements = []
    for _ in range(20_000):
        record = valid_record()
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            action = rng.random()
            if action < 0.75:
                record[rng.choice(names)] = rng.choice(ODD_VALUES)
            elif action < 0.9:
                record.pop(rng.choice(names), None)
            else:
                record[rng.choice(["extra", "V", "Name", "npoints "])] = 1
        verdicts = {record_problem(record) is None, is_valid_record(record)}
        verdicts.add(validator.is_valid(record))
        if len(verdicts) > 1:
            disagreements.append(record)
    assert not disagreements[:5]


def test_fast_check_agrees_with_field_table_check_on_non_finite_numbers():
    rng = random.Random(2)
    names = [f.name for f in FIELDS]
    odd = ODD_VALUES + [float("nan"), float("inf"), -float("inf"), 2.5, 1e-300]
    for _ in range(20_000):
        record = valid_record()
        for _ in range(rng.choice([1, 2])):
            record[rng.choice(names)] = rng.choice(odd)
        assert (record_problem(record) is None) == is_valid_record(record), record


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
