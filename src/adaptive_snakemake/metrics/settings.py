"""The `monitor:` section of config/config.yaml: its keys, defaults and JSON schema.

`MonitorSettings` is the one definition: each field carries its JSON schema and what it
expects, in words; `MonitorSettings.from_config` checks a section against `SCHEMA` with
jsonschema. workflow/schemas/config.schema.yaml leaves the section to it.
"""

import dataclasses
import math
from dataclasses import dataclass, field
from functools import cache

from adaptive_snakemake.errors import ConfigError

_FINITE = {"format": "finite"}  # YAML has .inf and .nan; JSON Schema cannot refuse them alone


def _setting(default, schema: dict, expected: str):
    return field(default=default, metadata={"schema": schema, "expected": expected})


@dataclass(frozen=True)
class MonitorSettings:
    """Monitor settings; every field is a key of `monitor:` in config/config.yaml."""

    enabled: bool = _setting(True, {"type": "boolean"}, "true or false")
    """False turns the collector and all network sends off (jobs still log JSON lines)."""
    host: str | None = _setting(
        None,
        {"type": ["string", "null"], "pattern": r"\S", "maxLength": 255},
        "a host name or address (or null)",
    )
    """Address jobs connect to; None means this machine's hostname."""
    bind: str = _setting("*", {"type": "string", "pattern": r"\S"}, "a host name or address")
    """Interface the collector listens on ("*" = all; CURVE keeps strangers out)."""
    port: int | None = _setting(
        None,
        {"type": ["integer", "null"], "minimum": 1024, "maximum": 65535},
        "a port number between 1024 and 65535 (or null)",
    )
    """TCP port; None means 20000 + a stable hash of the workflow directory (below 40000)."""
    curve: bool = _setting(True, {"type": "boolean"}, "true or false")
    """Encrypt and authenticate with ZeroMQ CURVE; only jobs holding the workflow's key connect."""
    stale_intervals: float = _setting(
        3.0, {"type": "number", "exclusiveMinimum": 0, **_FINITE}, "a positive number"
    )
    """A running learner not heard from for this many log intervals is marked stale."""
    log_interval: float = _setting(
        30.0, {"type": "number", "exclusiveMinimum": 0, **_FINITE}, "a positive number"
    )
    """Interval assumed for stale detection until a learner's own interval is known."""
    max_record_bytes: int = _setting(
        4096,
        {"type": "integer", "minimum": 512, "maximum": 65536},
        "a number of bytes between 512 and 65536",
    )
    """Larger records are dropped (and counted) without being parsed."""
    status_interval: float = _setting(
        1.0, {"type": "number", "exclusiveMinimum": 0, **_FINITE}, "a positive number"
    )
    """Seconds between rewrites of .adaptive-snakemake/status.json."""
    metrics_rotate_mb: float = _setting(
        100.0,
        {"type": "number", "exclusiveMinimum": 0, "maximum": 1e6, **_FINITE},
        "a positive number of MB (at most 1000000)",
    )
    """logs/metrics.jsonl is rotated to metrics.jsonl.1 before it grows past this size."""
    metrics_keep: int = _setting(
        5,
        {"type": "integer", "minimum": 0, "maximum": 1000},
        "a number of files between 0 and 1000",
    )
    """Rotated files kept (metrics.jsonl.1 newest ... .N oldest); disk use is bounded by
    (metrics_keep + 1) * metrics_rotate_mb."""

    @classmethod
    def from_config(
        cls, section: dict | None, where: str = "config/config.yaml"
    ) -> "MonitorSettings":
        """Settings from the `monitor:` mapping; ConfigError naming the key on any mistake."""
        if section is None:
            return cls()
        _validate(section, where)
        return cls(**{key: _coerce(key, value) for key, value in section.items()})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_FIELDS = {f.name: f for f in dataclasses.fields(MonitorSettings)}

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "description": "the monitor: section of config/config.yaml",
    "type": "object",
    "additionalProperties": False,
    "properties": {name: f.metadata["schema"] for name, f in _FIELDS.items()},
}


@cache
def _validator():
    import jsonschema  # ~0.2 s: only when a section is given, never in a job's reporter

    formats = jsonschema.FormatChecker(formats=())
    formats.checks("finite")(lambda value: not isinstance(value, float) or math.isfinite(value))
    return jsonschema.Draft202012Validator(SCHEMA, format_checker=formats)


def _validate(section, where: str) -> None:
    import jsonschema

    error = jsonschema.exceptions.best_match(_validator().iter_errors(section))
    if error is None:
        return
    if not error.path:
        if error.validator == "additionalProperties":
            unknown = ", ".join(repr(key) for key in section if key not in _FIELDS)
            problem = f"unknown key {unknown}; known keys: {', '.join(_FIELDS)}"
        else:
            problem = f"expected a mapping, got {section!r}"
        raise ConfigError(f"{where}: monitor: {problem}")
    key = error.path[0]
    expected = _FIELDS[key].metadata["expected"]
    raise ConfigError(f"{where}: monitor: {key}: expected {expected}, got {section[key]!r}")


def _coerce(key: str, value):
    """A valid value as the field's type: YAML's 3 for a number, 3.0 for an integer."""
    kinds = _FIELDS[key].metadata["schema"]["type"]
    if value is None or isinstance(value, bool):
        return value
    if "number" in kinds:
        return float(value)
    if "integer" in kinds:
        return int(value)
    return value
