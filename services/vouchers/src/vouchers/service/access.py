"""Who may do what: officials act for the areas they are responsible for; the steering group of an area is the
members an official registered for it, signed in with the steering_group role."""

from __future__ import annotations

from typing import TypeVar

from buurtkracht_contracts.refusals import NotAllowed, NotFound
from buurtkracht_kit.auth import Principal, Role

from ..adapters.unit_of_work import VouchersUnitOfWork

T = TypeVar("T")


def require(actor: Principal, roles: set[Role], area_code: str, action: str) -> None:
    if not (actor.roles & roles) or not actor.acts_for(area_code):
        names = " or ".join(sorted(role.value for role in roles))
        raise NotAllowed(f"only a {names} responsible for {area_code} can {action}")


def is_official_for(actor: Principal, area_code: str) -> bool:
    return actor.has(Role.OFFICIAL) and actor.acts_for(area_code)


async def is_member_for(uow: VouchersUnitOfWork, actor: Principal, area_code: str) -> bool:
    """Whether the caller is a registered member of the area's steering group, signed in with the role."""
    return actor.has(Role.STEERING_GROUP) and (await uow.steering_groups.get(area_code)).is_member(actor.subject)


def found(thing: T | None, what: str) -> T:
    if thing is None:
        raise NotFound(what)
    return thing
