"""An area as the public sees it: its CBS code, its name, its kind, the area it lies in and its outline, as the area
registry of the initiatives service last told it (`AreaRegistered`): the newest registration of a code is the one
shown. An area the registry has not told of reads as its code."""

from __future__ import annotations

import math
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


MAP_WIDTH = 320.0  # the drawing's width in SVG units; its height follows the outline's shape


@dataclass(frozen=True)
class Drawing:
    """An outline as SVG draws it: a path (`d`, every ring closed, holes by the even-odd rule) in a view box."""

    path: str
    width: float
    height: float


def drawing(outline: dict[str, Any] | None) -> Drawing | None:
    """The outline (a GeoJSON Polygon or MultiPolygon, in longitude/latitude or in metres such as RD New) as a
    drawing `MAP_WIDTH` wide, north up, its shape kept: in degrees, east-west distances shrink with the cosine of
    the latitude. None for no outline, another kind of geometry, or one without extent."""
    if not outline or outline.get("type") not in ("Polygon", "MultiPolygon"):
        return None
    polygons = [outline["coordinates"]] if outline["type"] == "Polygon" else outline["coordinates"]
    rings = [[(float(x), float(y)) for x, y, *_ in ring] for polygon in polygons for ring in polygon if ring]
    points = [point for ring in rings for point in ring]
    if not points:
        return None
    xs, ys = [x for x, _ in points], [y for _, y in points]
    in_degrees = all(abs(x) <= 180 for x in xs) and all(abs(y) <= 90 for y in ys)
    stretch = math.cos(math.radians((min(ys) + max(ys)) / 2)) if in_degrees else 1.0
    extent_x, extent_y = (max(xs) - min(xs)) * stretch, max(ys) - min(ys)
    if extent_x <= 0 or extent_y <= 0:
        return None
    scale = MAP_WIDTH / extent_x

    def at(x: float, y: float) -> str:
        return f"{(x - min(xs)) * stretch * scale:.1f} {(max(ys) - y) * scale:.1f}"

    path = " ".join("M " + " L ".join(at(x, y) for x, y in ring) + " Z" for ring in rings)
    return Drawing(path, MAP_WIDTH, round(extent_y * scale, 1))
