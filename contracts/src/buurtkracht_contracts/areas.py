"""CBS area codes, in one place: their format and how they nest.

A municipality `GM0363` contains its wijken `WK0363xx`, a wijk `WK036301` its buurten `BU036301xx`: a code
names its level by its prefix, and the digits after the prefix of an outer area start the digits of every
area inside it. An area contains itself. A malformed code contains nothing and lies in nothing.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

PATTERN = r"^(GM[0-9]{4}|WK[0-9]{6}|BU[0-9]{8})$"  # ASCII digits only: \d takes any script\'s digits
_FORMAT = re.compile(PATTERN)
_LEVEL = {"GM": 0, "WK": 1, "BU": 2}

AreaCode = Annotated[
    str,
    Field(
        pattern=PATTERN,
        max_length=10,
        description="CBS code of a municipality (GM0363), wijk (WK036301) or buurt (BU03630101)",
        examples=["WK036301"],
    ),
]


def is_area_code(code: str) -> bool:
    return bool(_FORMAT.fullmatch(code))


def within(area: str, outer: str) -> bool:
    """Whether `area` is `outer` or lies inside it."""
    if not (is_area_code(area) and is_area_code(outer)):
        return False
    if area == outer:
        return True
    return _LEVEL[outer[:2]] < _LEVEL[area[:2]] and area[2:].startswith(outer[2:])


def enclosing(code: str) -> list[str]:
    """`code` and every area it lies in, innermost first (BU03630101 → itself, WK036301, GM0363)."""
    if not is_area_code(code):
        return []
    digits = code[2:]
    return [code] + {"GM": [], "WK": [f"GM{digits[:4]}"], "BU": [f"WK{digits[:6]}", f"GM{digits[:4]}"]}[code[:2]]


def inside_prefixes(code: str) -> list[str]:
    """The prefixes every area strictly inside `code` starts with (GM0363 → WK0363, BU0363; a buurt has none)."""
    if not is_area_code(code):
        return []
    digits = code[2:]
    return {"GM": [f"WK{digits}", f"BU{digits}"], "WK": [f"BU{digits}"], "BU": []}[code[:2]]


def inside_patterns(code: str) -> list[str]:
    """SQL LIKE patterns matching every area strictly inside `code` (codes hold no LIKE wildcards)."""
    return [f"{prefix}%" for prefix in inside_prefixes(code)]
