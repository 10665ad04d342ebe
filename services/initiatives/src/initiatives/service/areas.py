"""Registering areas: the municipality imports the CBS "wijk- en buurtkaart"; every area that is new, or reads
differently than before, is stored and told as `AreaRegistered` in the same unit of work (through the outbox), so
every service that names areas learns the same names. An import of what is already registered tells nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from buurtkracht_contracts.initiatives import AreaRegistered
from buurtkracht_contracts.refusals import NotAllowed
from buurtkracht_kit.auth import Principal, Role

from ..adapters.unit_of_work import InitiativesUnitOfWork
from ..domain.areas import from_cbs


@dataclass(frozen=True)
class Imported:
    registered: int  # new codes
    changed: int  # codes whose name, kind, parent or outline changed
    unchanged: int


async def import_cbs(uow: InitiativesUnitOfWork, actor: Principal, collection: Any) -> Imported:
    """Register the areas of a CBS GeoJSON FeatureCollection: all of them, or (refused) none."""
    if not actor.has(Role.ADMIN):
        raise NotAllowed("only an administrator registers areas")
    areas = from_cbs(collection)
    known = await uow.areas.among([area.code for area in areas], for_update=True)
    news = [area for area in areas if known.get(area.code) != area]
    await uow.areas.save(news)
    uow.record_all(
        AreaRegistered(
            code=area.code, name=area.name, kind=area.kind, parent_code=area.parent_code, outline=area.outline
        )
        for area in news
    )
    fresh = sum(1 for area in news if area.code not in known)
    return Imported(registered=fresh, changed=len(news) - fresh, unchanged=len(areas) - len(news))
