"""What the public pages read from the read model: the areas with initiatives, an area's initiatives grouped as the
buurt page shows them, one initiative, one open round with its totals."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from ..adapters.areas import AreaWithInitiatives
from ..adapters.read_model import Listed
from ..adapters.unit_of_work import PortalUnitOfWork
from ..domain.areas import Drawing, drawing
from ..domain.model import PublicRound, RoundTotals, Status

# the buurt page's sections, in order, and the statuses each shows
SECTIONS: dict[str, tuple[Status, ...]] = {
    "gathering": (Status.GATHERING_SUPPORT, Status.IN_REVIEW, Status.CHANGES_REQUESTED),
    "approved": (Status.APPROVED,),
    "funded": (Status.FUNDED, Status.IN_PROGRESS),
    "done": (Status.COMPLETED,),
}
MOST_ON_A_PAGE = 100


@dataclass
class AreaPage:
    area_code: str
    sections: dict[str, list[Listed]] = field(default_factory=dict)
    rounds: list[RoundTotals] = field(default_factory=list)
    total: int = 0
    map: Drawing | None = None  # the area's outline, when the registry has one


async def area_names(uow: PortalUnitOfWork) -> dict[str, str]:
    """Every registered area's name by code: the pages name an area, never show its code alone."""
    return await uow.read_model.all_names()


async def areas(uow: PortalUnitOfWork) -> list[AreaWithInitiatives]:
    return await uow.areas.with_initiatives()


async def area_page(uow: PortalUnitOfWork, area_code: str) -> AreaPage:
    listed, total = await uow.read_model.initiatives_in(area_code, MOST_ON_A_PAGE, 0)
    page = AreaPage(area_code, {name: [] for name in SECTIONS}, await uow.read_model.open_rounds_for(area_code), total)
    registered = await uow.read_model.area(area_code)
    page.map = drawing(registered.outline) if registered else None
    for one in listed:
        for name, statuses in SECTIONS.items():
            if one.initiative.status in statuses:
                page.sections[name].append(one)
    return page


async def initiative(uow: PortalUnitOfWork, initiative_id: uuid.UUID) -> Listed | None:
    found = await uow.read_model.initiative(initiative_id)
    return Listed(found, await uow.read_model.pledged_to(initiative_id)) if found else None


async def open_rounds_for(uow: PortalUnitOfWork, area_code: str) -> list[RoundTotals]:
    return await uow.read_model.open_rounds_for(area_code)


async def round_totals(uow: PortalUnitOfWork, round_id: uuid.UUID) -> tuple[PublicRound | None, RoundTotals | None]:
    """The round as the read model knows it, and its totals while it is open."""
    found = await uow.read_model.round(round_id)
    if found is None:
        return None, None
    totals = next((t for t in await uow.read_model.open_rounds_for(found.area_code) if t.round.id == round_id), None)
    return found, totals
