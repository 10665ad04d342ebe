"""Steering groups: an official responsible for an area registers its members (and its chair); the officials of
the area and the members themselves, signed in with the steering_group role, read who they are."""

from __future__ import annotations

from datetime import datetime

from buurtkracht_contracts.refusals import NotAllowed
from buurtkracht_kit.auth import Principal, Role

from ..adapters.unit_of_work import VouchersUnitOfWork
from ..domain.steering import Member, SteeringGroup
from .access import is_member_for, is_official_for, require
from .locking import lock_steering_group


async def register_steering_group(
    uow: VouchersUnitOfWork, actor: Principal, area_code: str, members: list[Member], now: datetime
) -> SteeringGroup:
    """Replace the area's members; the group as registered."""
    require(actor, {Role.OFFICIAL}, area_code, "register its steering group")
    group = await lock_steering_group(uow, area_code)
    if group.replace(members, actor.subject, now):
        await uow.steering_groups.save(group)
        uow.collect(group)
    return group


async def steering_group(uow: VouchersUnitOfWork, actor: Principal, area_code: str) -> SteeringGroup:
    """The group, for the officials of the area and its members signed in with the steering_group role."""
    if not (is_official_for(actor, area_code) or await is_member_for(uow, actor, area_code)):
        raise NotAllowed(
            f"only officials responsible for {area_code} and the members of its steering group, signed in with the "
            "steering_group role, see its steering group"
        )
    return await uow.steering_groups.get(area_code)
