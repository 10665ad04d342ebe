"""What a person reads for an area. There is no area registry yet: an area reads as its CBS code until one gives
it a name. Every message takes an area's name from `area_label`, so filling it from a registry is one change."""

from __future__ import annotations


def area_label(code: str) -> str:
    """The name of the area with CBS code `code`, as messages show it (for now: the code itself)."""
    return code


def area_level(code: str) -> str:
    """`GM` (a municipality), `WK` (a wijk) or `BU` (a buurt): the level a CBS code names by its prefix; a code of
    no known level reads as a buurt."""
    prefix = code[:2]
    return prefix if prefix in ("GM", "WK", "BU") else "BU"
