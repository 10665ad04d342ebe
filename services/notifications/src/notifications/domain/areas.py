"""What a person reads for an area: its name, as the area registry tells it (`AreaRegistered`), or its CBS code
where the registry does not know it (yet). Every message takes an area's name from `area_label`, given the names
this service knows of the areas the message is about."""

from __future__ import annotations

from collections.abc import Mapping

Names = Mapping[str, str]  # CBS code -> name, of the areas a message is about


def area_label(code: str, names: Names | None = None) -> str:
    """The name of the area with CBS code `code` among `names`; the code itself for an area of no known name."""
    return (names or {}).get(code) or code


def area_level(code: str) -> str:
    """`GM` (a municipality), `WK` (a wijk) or `BU` (a buurt): the level a CBS code names by its prefix; a code of
    no known level reads as a buurt."""
    prefix = code[:2]
    return prefix if prefix in ("GM", "WK", "BU") else "BU"
