"""What the public asks of the read model: initiatives of an area, one initiative, the open rounds of an area.

Each takes whatever hands it the read model: the public API's `Reading` (no transaction; each query here is one
statement) or a unit of work."""

from __future__ import annotations

import uuid
from typing import Protocol

from buurtkracht_contracts.refusals import NotFound

from ..adapters.read_model import Listed, ReadModel
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
