"""Steering groups over HTTP: an official registers the members of an area's steering group; the officials of the
area and the members read it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import Field, StrictBool

from buurtkracht_contracts.areas import PATTERN
from buurtkracht_kit.auth import Caller
from buurtkracht_kit.inputs import ResidentId, Strict

from ...domain.steering import MAX_MEMBERS, Member, SteeringGroup
from ...service import steering
from .common import Answer, now, unit_of_work

router = APIRouter(tags=["steering group"])

AreaPath = Annotated[
    str, Path(pattern=PATTERN, max_length=10, description="CBS code of the area", examples=["WK036300"])
]


class MemberIn(Strict):
    member_id: ResidentId = Field(description="The member's pseudonymous id (their sign-in)")
    chair: StrictBool = False


class Registration(Strict):
    members: list[MemberIn] = Field(
        max_length=MAX_MEMBERS, description="Every member (replaces the list); at most one chairs the group"
    )


class MemberOut(Answer):
    member_id: str
    chair: bool


class SteeringGroupOut(Answer):
    area_code: str
    members: list[MemberOut]
    chair_id: str | None
    changed_by: str | None
    changed_at: datetime | None

    @classmethod
    def of(cls, group: SteeringGroup) -> SteeringGroupOut:
        return cls.model_validate(vars(group) | {"chair_id": group.chair_id})


@router.put(
    "/areas/{area_code}/steering-group",
    summary="An official responsible for the area registers its steering group (replaces the members)",
)
async def register_steering_group(
    area_code: AreaPath, body: Registration, caller: Caller, request: Request
) -> SteeringGroupOut:
    members = [Member(m.member_id, m.chair) for m in body.members]
    async with unit_of_work(request) as uow:
        group = await steering.register_steering_group(uow, caller, area_code, members, now())
        await uow.commit()
    return SteeringGroupOut.of(group)


@router.get(
    "/areas/{area_code}/steering-group",
    summary="The area's steering group (officials responsible for the area, and its members signed in with the "
    "steering_group role)",
)
async def get_steering_group(area_code: AreaPath, caller: Caller, request: Request) -> SteeringGroupOut:
    async with unit_of_work(request) as uow:
        return SteeringGroupOut.of(await steering.steering_group(uow, caller, area_code))
