"""An area as the public sees it: its CBS code, its name, its kind, the area it lies in and its outline, as the area
registry of the initiatives service last told it (`AreaRegistered`): the newest registration of a code is the one
shown. An area the registry has not told of reads as its code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from buurtkracht_contracts import initiatives as events


@dataclass(frozen=True)
class PublicArea:
    code: str
    name: str
    kind: str  # gemeente, wijk or buurt
    parent_code: str | None
    outline: dict[str, Any] | None  # a GeoJSON geometry, when the registry has one

    @classmethod
    def registered(cls, event: events.AreaRegistered) -> PublicArea:
        return cls(event.code, event.name, event.kind, event.parent_code, event.outline)


def label(code: str, names: dict[str, str]) -> str:
    """The name of the area `code` among `names`, or the code itself when it has none."""
    return names.get(code) or code
