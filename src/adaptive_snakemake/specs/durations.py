"""Durations written as numbers of seconds or strings such as "90s", "2h", "1h30m"."""

import re

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_WHOLE = re.compile(r"\s*(\d+(?:\.\d+)?\s*[smhd]\s*)+")


def parse_duration(value) -> float:
    """Seconds in `value`; raises ValueError with the offending text."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}")
    if isinstance(value, int | float):
        if value <= 0:
            raise ValueError(f"a duration must be positive, got {value!r}")
        return float(value)
    if isinstance(value, str) and _WHOLE.fullmatch(value):
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(value))
        if seconds > 0:
            return seconds
    raise ValueError(
        f'expected a duration such as 90, "90s", "30m", "2h" or "1h30m", got {value!r}'
    )
