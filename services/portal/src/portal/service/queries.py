"""What the public asks of the read model: initiatives of an area, one initiative, the open rounds of an area."""

from __future__ import annotations

import uuid

from buurtkracht_contracts.refusals import NotFound

from ..adapters.read_model import Listed
from ..adapters.unit_of_work import PortalUnitOfWork
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
