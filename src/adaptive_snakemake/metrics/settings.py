"""The `monitor:` section of config/config.yaml: keys, defaults and checks."""

import dataclasses
import math
from dataclasses import dataclass

from adaptive_snakemake.errors import ConfigError


@dataclass(frozen=True)
class MonitorSettings:
    """Monitor settings; every field is a key of `monitor:` in config/config.yaml."""

    enabled: bool = True
    """False turns the collector and all network sends off (jobs still log JSON lines)."""
    host: str | None = None
    """Address jobs connect to; None means this machine's hostname."""
    bind: str = "*"
    """Interface the collector listens on ("*" = all; CURVE keeps strangers out)."""
    port: int | None = None
    """TCP port; None means 20000 + a stable hash of the workflow directory (below 40000)."""
    curve: bool = True
    """Encrypt and authenticate with ZeroMQ CURVE; only jobs holding the workflow's key connect."""
    stale_intervals: float = 3.0
    """A running learner not heard from for this many log intervals is marked stale."""
    log_interval: float = 30.0
    """Interval assumed for stale detection until a learner's own interval is known."""
    max_record_bytes: int = 4096
    """Larger records are dropped (and counted) without being parsed."""
    status_interval: float = 1.0
    """Seconds between rewrites of .adaptive-snakemake/status.json."""

    @classmethod
    def from_config(
        cls, section: dict | None, where: str = "config/config.yaml"
    ) -> "MonitorSettings":
        """Settings from the `monitor:` mapping; ConfigError naming the key on any mistake."""
        if section is None:
            return cls()
        if not isinstance(section, dict):
            raise ConfigError(f"{where}: monitor: expected a mapping, got {section!r}")
        known = [f.name for f in dataclasses.fields(cls)]
        for key in section:
            if key not in known:
                raise ConfigError(
                    f"{where}: monitor: unknown key {key!r}; known keys: {', '.join(known)}"
                )
        for key, value in section.items():
            problem = _CHECKS[key](value)
            if problem:
                raise ConfigError(f"{where}: monitor: {key}: {problem}, got {value!r}")
        values = dict(section)
        for key in ("stale_intervals", "log_interval", "status_interval"):
            if key in values:
                values[key] = float(values[key])
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _is_bool(value):
    return None if isinstance(value, bool) else "expected true or false"


def _is_optional_text(value):
    if value is None or (isinstance(value, str) and value.strip() and len(value) <= 255):
        return None
    return "expected a host name or address (or null)"


def _is_text(value):
    return None if isinstance(value, str) and value.strip() else "expected a host name or address"


def _is_port(value):
    if value is None or (type(value) is int and 1024 <= value <= 65535):
        return None
    return "expected a port number between 1024 and 65535 (or null)"


def _positive_number(value):
    if type(value) in (int, float) and math.isfinite(value) and value > 0:
        return None
    return "expected a positive number"


def _record_size(value):
    if type(value) is int and 512 <= value <= 65536:
        return None
    return "expected a number of bytes between 512 and 65536"


_CHECKS = {
    "enabled": _is_bool,
    "host": _is_optional_text,
    "bind": _is_text,
    "port": _is_port,
    "curve": _is_bool,
    "stale_intervals": _positive_number,
    "log_interval": _positive_number,
    "max_record_bytes": _record_size,
    "status_interval": _positive_number,
}
