"""The areas tests propose initiatives for. Initiatives are proposed only for registered areas, so a test first does
what a municipality does: an administrator imports the CBS wijk- en buurtkaart, here the committed sample. Where a
test uses an area the sample does not hold, it registers a stand-in of that code, named as a test's, never as
CBS names it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

SAMPLE = Path(__file__).parents[1] / "deploy" / "local" / "areas" / "cbs-wijkenbuurten-2019-amsterdam-sample.geojson"
_PROPERTIES = {"GM": ("gemeentecode", "gemeentenaam"), "WK": ("wijkcode", "wijknaam"), "BU": ("buurtcode", "buurtnaam")}


def sample() -> dict[str, Any]:
    """The committed CBS sample as a GeoJSON FeatureCollection."""
    return json.loads(SAMPLE.read_text(encoding="utf-8"))


def stand_ins(*codes: str) -> dict[str, Any]:
    """A FeatureCollection as CBS lays it out, of areas with these codes and a test's names."""
    features = []
    for code in codes:
        code_field, name_field = _PROPERTIES[code[:2]]
        features.append(
            {"type": "Feature", "properties": {code_field: code, name_field: f"Testgebied {code}"}, "geometry": None}
        )
    return {"type": "FeatureCollection", "features": features}


async def register(client: httpx.AsyncClient, admin: dict[str, str], *stand_in_codes: str) -> None:
    """Import the sample, then stand-ins for `stand_in_codes`, through `PUT /api/v1/areas` of the initiatives
    service `client` reaches, as the administrator whose headers are `admin`."""
    collections = [sample()] + ([stand_ins(*stand_in_codes)] if stand_in_codes else [])
    for collection in collections:
        answer = await client.put("/api/v1/areas", json=collection, headers=admin)
        assert answer.status_code == 200, answer.text
