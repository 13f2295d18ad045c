"""Byte sizes written the way people write them: ``64MiB``, ``500MB``, ``1_000_000``."""

from __future__ import annotations

import re

from .errors import ConfigError

_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: int | str, *, name: str = "size") -> int:
    """Return ``value`` as a whole number of bytes (> 0).

    Decimal units (``KB``, ``MB``, ``GB``) are powers of 1000 and binary units (``KiB``,
    ``MiB``, ``GiB``, or bare ``K``/``M``/``G``) are powers of 1024.
    """
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a byte count such as 67108864 or '64MiB', not {value!r}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str):
        match = _SIZE.match(value.replace("_", ""))
        unit = match.group(2).lower() if match else ""
        if not match or unit not in _UNITS:
            raise ConfigError(
                f"{name}={value!r} is not a size; write a number of bytes or a number with a "
                "unit such as '64MiB', '500MB' or '2GB'"
            )
        size = int(float(match.group(1)) * _UNITS[unit])
    else:
        raise ConfigError(f"{name} must be an int or a string such as '64MiB', not {type(value).__name__}")
    if size <= 0:
        raise ConfigError(f"{name} must be positive, got {value!r}")
    return size


def format_size(n: float) -> str:
    """``format_size(67108864) == '64.0 MiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
