"""What the public asks of the read model: initiatives of an area, one initiative, the open rounds of an area, and an
area with its name.

Each takes whatever hands it the read model: the public API's `Reading` (no transaction; each query here is one
statement) or a unit of work."""

from __future__ import annotations

import uuid
from typing import Protocol

from buurtkracht_contracts.refusals import NotFound

from ..adapters.read_model import Listed, ReadModel
from ..domain.areas import PublicArea
from ..domain.model import RoundTotals


class Reads(Protocol):
    read_model: ReadModel


async def initiatives_in(reads: Reads, area_code: str, limit: int, offset: int) -> tuple[list[Listed], int]:
    return await reads.read_model.initiatives_in(area_code, limit, offset)


async def initiative(reads: Reads, initiative_id: uuid.UUID) -> Listed:
    found = await reads.read_model.listed(initiative_id)
    if found is None:
        raise NotFound(f"initiative {initiative_id}")
    return found


async def open_rounds_for(reads: Reads, area_code: str) -> list[RoundTotals]:
    return await reads.read_model.open_rounds_for(area_code)


async def area(reads: Reads, code: str) -> tuple[PublicArea, str | None]:
    """The area `code` and the name of the area it lies in (None when that one is not registered)."""
    found = await reads.read_model.area(code)
    if found is None:
        raise NotFound(f"area {code}")
    parent_name = await reads.read_model.name_of(found.parent_code) if found.parent_code else None
    return found, parent_name
