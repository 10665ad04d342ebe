"""Area containment in SQL, from the contracts' rules (`buurtkracht_contracts.areas`) rather than written again
here: an area lies in one of `areas` when it is one of them or matches a LIKE pattern of the areas strictly inside
one of them (`inside_any`). So every query that asks "in which areas" agrees with `within` in the domain."""

from __future__ import annotations

from collections.abc import Iterable

from buurtkracht_contracts.areas import inside_patterns


def in_areas(column: str, areas: str, inside: str) -> str:
    """SQL: `column` is one of the areas of the parameter `areas`, or matches a pattern of the parameter `inside`."""
    return f"({column} = ANY({areas}::text[]) OR {column} LIKE ANY({inside}::text[]))"


def inside_any(areas: Iterable[str]) -> list[str]:
    """The LIKE patterns of every area strictly inside one of `areas` (none for a malformed code)."""
    return [pattern for area in areas for pattern in inside_patterns(area)]
