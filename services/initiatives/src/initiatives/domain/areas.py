"""Areas as a municipality registers them: read from the CBS "wijk- en buurtkaart" it downloads, as GeoJSON.

The CBS file has one layer per level, and each feature names its level by the properties it carries: a buurt
`buurtcode` and `buurtnaam` (with the `wijkcode` and `gemeentecode` it lies in), a wijk `wijkcode` and `wijknaam`
(with its `gemeentecode`), a municipality `gemeentecode` and `gemeentenaam`. One collection may hold any mix of
the layers. An area's parent is the area its code nests in (`buurtkracht_contracts.areas.enclosing`); where the
file names the parent by a CBS code too, the two must agree.

An outline travels in the area's event, and an event must fit a Kafka record: an outline of more than
`MAX_OUTLINE_BYTES` (as compact JSON) is refused; CBS's generalised outlines are far smaller.

A collection is read whole or not at all: the first feature at fault is refused, naming its index and the field,
and nothing of the collection is taken.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from buurtkracht_contracts.areas import enclosing, is_area_code
from buurtkracht_contracts.refusals import InvalidInput

Kind = Literal["gemeente", "wijk", "buurt"]

MAX_FEATURES = 25_000  # every buurt, wijk and municipality of the Netherlands fits (about 18,000 in all)
MAX_NAME_LENGTH = 200
MAX_OUTLINE_BYTES = 768 << 10  # with the rest of the event, below Kafka's default 1 MiB per record
OUTLINE_TYPES = frozenset({"Polygon", "MultiPolygon"})

# level: (property of the code, property of the name, its code prefix, property naming its parent)
_LEVELS: tuple[tuple[Kind, str, str, str, str | None], ...] = (
    ("buurt", "buurtcode", "buurtnaam", "BU", "wijkcode"),
    ("wijk", "wijkcode", "wijknaam", "WK", "gemeentecode"),
    ("gemeente", "gemeentecode", "gemeentenaam", "GM", None),
)


@dataclass(frozen=True)
class Area:
    code: str
    name: str
    kind: Kind
    parent_code: str | None
    outline: dict[str, Any] | None


def _refuse(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, field=field)


def _area(index: int, feature: Any) -> Area:
    at = f"features[{index}]"
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise _refuse(at, "is not a GeoJSON Feature")
    properties = feature.get("properties")
    if not isinstance(properties, dict):
        raise _refuse(f"{at}.properties", "is missing")
    level = next((level for level in _LEVELS if level[1] in properties), None)
    if level is None:
        raise _refuse(f"{at}.properties", "names no buurtcode, wijkcode or gemeentecode")
    kind, code_field, name_field, prefix, parent_field = level
    code = properties[code_field]
    code = code.strip() if isinstance(code, str) else code  # CBS pads shorter codes with spaces
    if not isinstance(code, str) or not is_area_code(code) or not code.startswith(prefix):
        raise _refuse(f"{at}.properties.{code_field}", f"is not the CBS code of a {kind} ({prefix} and digits)")
    name = properties.get(name_field)
    name = name.strip() if isinstance(name, str) else None
    if not name:
        raise _refuse(f"{at}.properties.{name_field}", f"the {kind} {code} has no name")
    if len(name) > MAX_NAME_LENGTH:
        raise _refuse(f"{at}.properties.{name_field}", f"is longer than {MAX_NAME_LENGTH} characters")
    parent = enclosing(code)[1] if kind != "gemeente" else None
    given = properties.get(parent_field) if parent_field else None
    if isinstance(given, str) and is_area_code(given.strip()) and given.strip() != parent:
        raise _refuse(f"{at}.properties.{parent_field}", f"{code} does not lie in {given.strip()}")
    return Area(code, name, kind, parent, _outline(at, feature.get("geometry")))


def _outline(at: str, geometry: Any) -> dict[str, Any] | None:
    if geometry is None:
        return None
    if (
        not isinstance(geometry, dict)
        or geometry.get("type") not in OUTLINE_TYPES
        or not isinstance(geometry.get("coordinates"), list)
    ):
        raise _refuse(f"{at}.geometry", "is not a GeoJSON Polygon or MultiPolygon (or null)")
    outline = {"type": geometry["type"], "coordinates": geometry["coordinates"]}
    if len(json.dumps(outline, separators=(",", ":"))) > MAX_OUTLINE_BYTES:
        raise _refuse(f"{at}.geometry", f"is larger than {MAX_OUTLINE_BYTES:,} bytes: import a generalised outline")
    return outline


def from_cbs(collection: Any) -> list[Area]:
    """The areas of a CBS GeoJSON FeatureCollection, in the file's order; `InvalidInput` at the first fault."""
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection":
        raise _refuse("type", "is not a GeoJSON FeatureCollection")
    features = collection.get("features")
    if not isinstance(features, list) or not features:
        raise _refuse("features", "holds no features")
    if len(features) > MAX_FEATURES:
        raise _refuse("features", f"holds more than {MAX_FEATURES:,} features")
    areas: list[Area] = []
    seen: dict[str, int] = {}
    for index, feature in enumerate(features):
        area = _area(index, feature)
        if area.code in seen:
            code_field = next(level[1] for level in _LEVELS if level[0] == area.kind)
            raise _refuse(
                f"features[{index}].properties.{code_field}", f"{area.code} is also feature {seen[area.code]}"
            )
        seen[area.code] = index
        areas.append(area)
    return areas
