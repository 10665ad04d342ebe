"""HTTP API of the notifications service: a person's contact details, preferences and followed areas
(`/me`), their in-app inbox, and the delivery status of their messages."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from buurtkracht_kit.auth import Caller, Role
from buurtkracht_kit.problems import Problem

from ..adapters import notifications
from ..adapters.people import People
from ..domain.recipients import KINDS

router = APIRouter(prefix="/api/v1")
PROBLEMS: dict = {}
AreaCode = Annotated[str, Field(pattern=r"^(GM\d{4}|WK\d{6}|BU\d{8})$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContactDetails(Strict):
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254, examples=["bewoner@example.nl"])
    language: Literal["nl", "en"] = "nl"


class Preferences(Strict):
    email_enabled: bool = True
    frequency: Literal["immediate", "daily", "weekly"] = "immediate"
    muted_kinds: list[str] = Field(default_factory=list, description=f"Kinds not to email: {', '.join(KINDS)}")


class AreaFollows(Strict):
    area_codes: list[AreaCode] = Field(max_length=50)


class NotificationOut(BaseModel):
    id: uuid.UUID
    channel: str
    kind: str
    status: str
    params: dict[str, Any]
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    read_at: datetime | None
    last_error: str | None


class InboxPage(BaseModel):
    items: list[NotificationOut]
    total: int
    unread: int
    limit: int
    offset: int


def _out(stored: notifications.Stored) -> NotificationOut:
    return NotificationOut(
        id=stored.id,
        channel=stored.channel,
        kind=stored.kind,
        status=stored.status,
        params=stored.params,
        attempts=stored.attempts,
        created_at=stored.created_at,
        sent_at=stored.sent_at,
        read_at=stored.read_at,
        last_error=stored.last_error,
    )


@router.put("/contact-details/me", tags=["me"], summary="Register your email address and language")
async def put_contact(body: ContactDetails, caller: Caller, request: Request) -> ContactDetails:
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        people = People(conn)
        await people.set_contact(caller.subject, body.email, body.language)
        if caller.has(Role.OFFICIAL):  # officials hear of the areas they are responsible for
            await people.set_official_areas(caller.subject, sorted(caller.areas))
    return body


@router.get("/contact-details/me", tags=["me"])
async def get_contact(caller: Caller, request: Request) -> ContactDetails:
    async with request.app.state.pool.acquire() as conn:
        found = await People(conn).contact(caller.subject)
    if found is None:
        raise Problem.not_found("your contact details")
    return ContactDetails(email=found["email"], language=found["language"])


@router.delete(
    "/contact-details/me", status_code=204, tags=["me"], summary="Forget your address, preferences and followed areas"
)
async def forget_me(caller: Caller, request: Request) -> Response:
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        await People(conn).forget(caller.subject)
    return Response(status_code=204)


@router.put("/preferences/me", tags=["me"], summary="Email on or off, immediately or as a daily/weekly digest")
async def put_preferences(body: Preferences, caller: Caller, request: Request) -> Preferences:
    unknown = sorted(set(body.muted_kinds) - set(KINDS))
    if unknown:
        raise Problem.invalid("muted_kinds", f"unknown kinds: {', '.join(unknown)}")
    async with request.app.state.pool.acquire() as conn:
        await People(conn).set_preferences(caller.subject, body.email_enabled, body.frequency, body.muted_kinds)
    return body


@router.get("/preferences/me", tags=["me"])
async def get_preferences(caller: Caller, request: Request) -> Preferences:
    async with request.app.state.pool.acquire() as conn:
        found = await People(conn).preferences(caller.subject)
    return Preferences(**dict(found)) if found else Preferences()


@router.put("/area-follows/me", tags=["me"], summary="The areas whose news you want (replaces the list)")
async def put_follows(body: AreaFollows, caller: Caller, request: Request) -> AreaFollows:
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        await People(conn).set_follows(caller.subject, sorted(set(body.area_codes)))
    return AreaFollows(area_codes=sorted(set(body.area_codes)))


@router.get("/area-follows/me", tags=["me"])
async def get_follows(caller: Caller, request: Request) -> AreaFollows:
    async with request.app.state.pool.acquire() as conn:
        return AreaFollows(area_codes=await People(conn).follows(caller.subject))


@router.get("/inbox", tags=["inbox"], summary="Your in-app messages, newest first, with the unread count")
async def inbox(
    caller: Caller,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> InboxPage:
    async with request.app.state.pool.acquire() as conn:
        items, total, unread = await notifications.inbox(conn, caller.subject, limit, offset)
    return InboxPage(items=[_out(i) for i in items], total=total, unread=unread, limit=limit, offset=offset)


@router.post("/inbox/{notification_id}/read", tags=["inbox"], summary="Mark a message read")
async def mark_read(notification_id: uuid.UUID, caller: Caller, request: Request) -> NotificationOut:
    async with request.app.state.pool.acquire() as conn:
        stored = await notifications.mark_read(conn, caller.subject, notification_id)
    if stored is None:
        raise Problem.not_found(f"message {notification_id}")
    return _out(stored)


@router.get("/notifications/me", tags=["inbox"], summary="Delivery status of your messages on every channel")
async def my_notifications(
    caller: Caller, request: Request, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[NotificationOut]:
    async with request.app.state.pool.acquire() as conn:
        return [_out(s) for s in await notifications.of_recipient(conn, caller.subject, limit)]
