"""HTTP API of the area registry (`/api/v1/areas`): an administrator imports the CBS "wijk- en buurtkaart" as
GeoJSON; anyone reads the areas, without signing in (names of areas are public).

The import takes the file as CBS publishes it, so its body is read as JSON here and checked feature by feature
by the domain (`domain.areas`): a refusal names the feature's index and field (`features[3].properties.buurtnaam`),
and nothing of the file is registered.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from buurtkracht_contracts.areas import AreaCode
from buurtkracht_contracts.refusals import NotFound
from buurtkracht_kit.auth import Caller
from buurtkracht_kit.paging import Limit, Offset
from buurtkracht_kit.problems import Problem

from ..adapters.unit_of_work import InitiativesUnitOfWork
from ..domain.areas import Area
from ..service import areas

router = APIRouter(prefix="/api/v1/areas", tags=["areas"])

MAX_IMPORT_BYTES = 64 << 20  # a municipality's buurten, wijken and own outline at CBS's full detail
Kind = Literal["gemeente", "wijk", "buurt"]
_CBS_FILE = {  # as the OpenAPI document describes the body; the domain checks every feature
    "type": "object",
    "description": "A GeoJSON FeatureCollection of the CBS wijk- en buurtkaart: features with the properties "
    "buurtcode/buurtnaam/wijkcode, wijkcode/wijknaam/gemeentecode or gemeentecode/gemeentenaam",
    "required": ["type", "features"],
    "properties": {
        "type": {"type": "string", "enum": ["FeatureCollection"]},
        "features": {"type": "array", "items": {"type": "object"}},
    },
}


class AreaOut(BaseModel):
    code: str = Field(examples=["WK036300"])
    name: str = Field(examples=["Burgwallen-Oude Zijde"])
    kind: Kind
    parent_code: str | None = Field(description="The area it lies in; none for a municipality")
    outline: dict[str, Any] | None = Field(description="GeoJSON geometry of the area, when it was imported with one")

    @classmethod
    def of(cls, area: Area) -> AreaOut:
        return cls(code=area.code, name=area.name, kind=area.kind, parent_code=area.parent_code, outline=area.outline)


class AreaPage(BaseModel):
    items: list[AreaOut]
    total: int
    limit: int
    offset: int


class ImportOut(BaseModel):
    registered: int = Field(description="Areas new to the registry")
    changed: int = Field(description="Areas whose name, kind, parent or outline changed")
    unchanged: int = Field(description="Areas already registered as the file gives them")


def _unit_of_work(request: Request) -> InitiativesUnitOfWork:
    return request.app.state.service.unit_of_work()


@router.put(
    "",
    summary="An administrator registers the areas of a CBS wijk- en buurtkaart (GeoJSON FeatureCollection); all "
    "or, refused, none",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/geo+json": {"schema": _CBS_FILE}, "application/json": {"schema": _CBS_FILE}},
        }
    },
)
async def import_areas(caller: Caller, request: Request) -> ImportOut:
    try:
        collection = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise Problem.invalid("body", "is not JSON", status=400) from None
    async with _unit_of_work(request) as uow:
        imported = await areas.import_cbs(uow, caller, collection)
        await uow.commit()
    return ImportOut(registered=imported.registered, changed=imported.changed, unchanged=imported.unchanged)


@router.get("", summary="The registered areas, by code; those in one area, or of one kind")
async def list_areas(
    request: Request,
    parent_code: Annotated[AreaCode | None, Query()] = None,
    kind: Kind | None = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> AreaPage:
    async with _unit_of_work(request) as uow:
        found, total = await uow.areas.page(parent_code=parent_code, kind=kind, limit=limit, offset=offset)
    return AreaPage(items=[AreaOut.of(area) for area in found], total=total, limit=limit, offset=offset)


@router.get("/{area_code}", summary="One registered area: its name, kind, parent and outline")
async def get_area(area_code: Annotated[AreaCode, Path()], request: Request) -> AreaOut:
    async with _unit_of_work(request) as uow:
        area = await uow.areas.get(area_code)
    if area is None:
        raise NotFound(f"area {area_code}")
    return AreaOut.of(area)
