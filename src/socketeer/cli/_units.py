"""Sizes on the command line: ``--max-size 1MiB``, ``--size 64KiB``.

A size is a number of bytes, a whole number or a decimal one, followed by an optional unit,
case-insensitive, with or without a space: ``B`` (or none); ``K``/``KB``, ``M``/``MB``,
``G``/``GB`` (powers of 1000); ``Ki``/``KiB``, ``Mi``/``MiB``, ``Gi``/``GiB`` (powers of
1024). The result must be a whole number of bytes: ``1.5KiB`` is 1536, ``1.5B`` is an error.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from fractions import Fraction

__all__ = ["UNITS", "parse_size", "size_type", "format_size"]

UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
}
"""The units of sizes, lower-case, and their number of bytes."""

_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+) ?([A-Za-z]*)")


def parse_size(text: str) -> int:
    """The number of bytes that ``text`` says, e.g. ``"64KiB"`` → 65536.

    Raises:
        ValueError: if ``text`` is not a size, as the module says.
    """
    match = _SIZE.fullmatch(text.strip())
    unit = None if match is None else UNITS.get(match.group(2).lower())
    if match is None or unit is None:
        raise ValueError(f"expected a size in bytes, such as 65536, 64KiB or 1MiB, got {text!r}")
    size = Fraction(match.group(1)) * unit  # exact, unlike a float
    if size.denominator != 1:
        raise ValueError(f"expected a whole number of bytes, got {text!r}")
    return int(size)


def size_type(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: a size (see :func:`parse_size`) from ``minimum`` to
    ``maximum`` bytes."""

    def size(value: str) -> int:
        try:
            number = parse_size(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if number < minimum:
            raise argparse.ArgumentTypeError(
                f"expected at least {format_size(minimum)}, got {value!r}"
            )
        if maximum is not None and number > maximum:
            raise argparse.ArgumentTypeError(
                f"expected at most {format_size(maximum)}, got {value!r}"
            )
        return number

    return size


def format_size(size: int) -> str:
    """``size`` bytes for people: ``1 MiB``, ``64 KiB``, ``1000 bytes``, ``1 byte``."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} byte{'s' if size != 1 else ''}"
