"""What the public asks of the read model: initiatives of an area, one initiative, the open rounds of an area, and an
area with its name."""

from __future__ import annotations

import uuid

from buurtkracht_contracts.refusals import NotFound

from ..adapters.read_model import Listed
from ..adapters.unit_of_work import PortalUnitOfWork
from ..domain.areas import PublicArea
from ..domain.model import PublicInitiative, RoundTotals


async def initiatives_in(uow: PortalUnitOfWork, area_code: str, limit: int, offset: int) -> tuple[list[Listed], int]:
    return await uow.read_model.initiatives_in(area_code, limit, offset)


async def initiative(uow: PortalUnitOfWork, initiative_id: uuid.UUID) -> Listed:
    found: PublicInitiative | None = await uow.read_model.initiative(initiative_id)
    if found is None:
        raise NotFound(f"initiative {initiative_id}")
    return Listed(found, await uow.read_model.pledged_to(initiative_id))


async def open_rounds_for(uow: PortalUnitOfWork, area_code: str) -> list[RoundTotals]:
    return await uow.read_model.open_rounds_for(area_code)


async def area(uow: PortalUnitOfWork, code: str) -> tuple[PublicArea, str | None]:
    """The area `code` and the name of the area it lies in (None when that one is not registered)."""
    found = await uow.read_model.area(code)
    if found is None:
        raise NotFound(f"area {code}")
    parent_name = await uow.read_model.name_of(found.parent_code) if found.parent_code else None
    return found, parent_name
