"""HTTP API of the notifications service: a person's contact details, preferences and followed areas
(`/me`), their in-app inbox, the delivery status of their messages, everything the service holds about them
(`/api/v1/me/export`), and forgetting them in every service (`DELETE /api/v1/me`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from buurtkracht_contracts.areas import AreaCode
from buurtkracht_kit.auth import Caller, Role
from buurtkracht_kit.inputs import Line, Strict
from buurtkracht_kit.paging import Offset
from buurtkracht_kit.problems import Problem

from ..adapters.unit_of_work import NotificationsUnitOfWork
from ..domain.recipients import KINDS
from ..service import privacy, reminders

router = APIRouter(prefix="/api/v1")
me_router = APIRouter(prefix="/api/v1/me", tags=["me"])

# local part @ domain with a dot; no white space and no control characters (NUL, DEL, C1, line separators)
EMAIL_PATTERN = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s\x00-\x1f\x7f-\x9f]+\.[^@\s\x00-\x1f\x7f-\x9f]+$"


class ContactDetails(Strict):
    email: str = Field(pattern=EMAIL_PATTERN, max_length=254, examples=["bewoner@example.nl"])
    language: Literal["nl", "en"] = "nl"


class Preferences(Strict):
    email_enabled: StrictBool = True
    frequency: Literal["immediate", "daily", "weekly"] = "immediate"
    muted_kinds: list[Annotated[Line, Field(max_length=100)]] = Field(
        default_factory=list, max_length=len(KINDS), description=f"Kinds not to email: {', '.join(KINDS)}"
    )


class AreaFollows(Strict):
    area_codes: list[AreaCode] = Field(max_length=50)


class NotificationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

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


def _unit_of_work(request: Request) -> NotificationsUnitOfWork:
    return request.app.state.service.unit_of_work()


@router.put("/contact-details/me", tags=["me"], summary="Register your email address and language")
async def put_contact(body: ContactDetails, caller: Caller, request: Request) -> ContactDetails:
    async with _unit_of_work(request) as uow:
        await privacy.welcome_back(uow, caller.subject)
        await uow.people.set_contact(caller.subject, body.email, body.language)
        await reminders.home(uow, caller)
        if caller.has(Role.OFFICIAL):  # officials hear of the areas they are responsible for
            await uow.people.set_official_areas(caller.subject, sorted(caller.areas))
        await uow.commit()
    return body


@router.get("/contact-details/me", tags=["me"])
async def get_contact(caller: Caller, request: Request) -> ContactDetails:
    async with _unit_of_work(request) as uow:
        found = await uow.people.contact(caller.subject)
    if found is None:
        raise Problem.not_found("your contact details")
    return ContactDetails(email=found["email"], language=found["language"])


@router.delete(
    "/contact-details/me",
    status_code=204,
    tags=["me"],
    summary="Forget your email address: no more email (to be forgotten everywhere: DELETE /api/v1/me)",
    description="Removes your address and language (and, for an official, the areas registered with them). Your "
    "preferences, followed areas and in-app messages stay here, and the other services keep what they hold; "
    "`DELETE /api/v1/me` erases all of it.",
)
async def forget_contact(caller: Caller, request: Request) -> Response:
    async with _unit_of_work(request) as uow:
        await uow.people.forget_contact(caller.subject)
        await uow.commit()
    return Response(status_code=204)


@router.put("/preferences/me", tags=["me"], summary="Email on or off, immediately or as a daily/weekly digest")
async def put_preferences(body: Preferences, caller: Caller, request: Request) -> Preferences:
    unknown = sorted(set(body.muted_kinds) - set(KINDS))
    if unknown:
        raise Problem.invalid("muted_kinds", f"unknown kinds: {', '.join(unknown)}")
    async with _unit_of_work(request) as uow:
        await privacy.welcome_back(uow, caller.subject)
        await uow.people.set_preferences(caller.subject, body.email_enabled, body.frequency, body.muted_kinds)
        await reminders.home(uow, caller)
        await uow.commit()
    return body


@router.get("/preferences/me", tags=["me"])
async def get_preferences(caller: Caller, request: Request) -> Preferences:
    async with _unit_of_work(request) as uow:
        found = await uow.people.preferences(caller.subject)
    return Preferences(**dict(found)) if found else Preferences()


@router.put("/area-follows/me", tags=["me"], summary="The areas whose news you want (replaces the list)")
async def put_follows(body: AreaFollows, caller: Caller, request: Request) -> AreaFollows:
    async with _unit_of_work(request) as uow:
        await privacy.welcome_back(uow, caller.subject)
        await uow.people.set_follows(caller.subject, sorted(set(body.area_codes)))
        await reminders.home(uow, caller)
        await uow.commit()
    return AreaFollows(area_codes=sorted(set(body.area_codes)))


@router.get("/area-follows/me", tags=["me"])
async def get_follows(caller: Caller, request: Request) -> AreaFollows:
    async with _unit_of_work(request) as uow:
        return AreaFollows(area_codes=await uow.people.follows(caller.subject))


@router.get("/inbox", tags=["inbox"], summary="Your in-app messages, newest first, with the unread count")
async def inbox(
    caller: Caller,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Offset = 0,
) -> InboxPage:
    async with _unit_of_work(request) as uow:
        items, total, unread = await uow.notifications.inbox(caller.subject, limit, offset)
    return InboxPage(
        items=[NotificationOut.model_validate(i) for i in items], total=total, unread=unread, limit=limit, offset=offset
    )


@router.post("/inbox/{notification_id}/read", tags=["inbox"], summary="Mark a message read")
async def mark_read(notification_id: uuid.UUID, caller: Caller, request: Request) -> NotificationOut:
    async with _unit_of_work(request) as uow:
        stored = await uow.notifications.mark_read(caller.subject, notification_id)
        await uow.commit()
    if stored is None:
        raise Problem.not_found(f"message {notification_id}")
    return NotificationOut.model_validate(stored)


@router.get("/notifications/me", tags=["inbox"], summary="Delivery status of your messages on every channel")
async def my_notifications(
    caller: Caller, request: Request, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[NotificationOut]:
    async with _unit_of_work(request) as uow:
        return [NotificationOut.model_validate(s) for s in await uow.notifications.of_recipient(caller.subject, limit)]


class StoredContactDetails(BaseModel):
    email: str
    language: Literal["nl", "en"]
    updated_at: datetime


class StoredPreferences(BaseModel):
    email_enabled: bool
    frequency: Literal["immediate", "daily", "weekly"]
    muted_kinds: list[str]
    last_digest_at: datetime | None = Field(description="When your last digest was sent")
    updated_at: datetime


class InvolvementOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    initiative_id: uuid.UUID
    title: str | None
    role: Literal["initiator", "supporter", "volunteer"]


class CreatedSubscription(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    url: str
    description: str
    created_at: datetime


class WalletOut(BaseModel):
    round_id: uuid.UUID
    balance_cents: int = Field(description="What the wallet held when the last pledge to or from it was made")


class PersonalDataExport(BaseModel):
    subject: str = Field(description="Your pseudonymous id: everything below is held about it")
    contact_details: StoredContactDetails | None = Field(description="Your address and language, if registered")
    preferences: StoredPreferences | None = Field(description="Your email preferences, if you set them")
    area_follows: list[str] = Field(description="The areas whose news you follow")
    official_areas: list[str] = Field(
        description="The areas you are responsible for as an official, as registered with your address"
    )
    involvement: list[InvolvementOut] = Field(
        description="The initiatives this service knows you are involved in, as their events told it (to decide "
        "who hears of them)"
    )
    inbox: list[NotificationOut] = Field(description="Your in-app messages, oldest first")
    email: list[NotificationOut] = Field(
        description="The email messages to you, oldest first, with their status: waiting (pending or in a digest), "
        "sent or failed"
    )
    webhook_subscriptions: list[CreatedSubscription] = Field(
        description="The webhook subscriptions you created as an admin"
    )
    areas_lived_in: list[str] = Field(
        description="The areas this service knows you live in (your buurt as your sign-in tells it, the area of a "
        "round that gave you a wallet or of an initiative you supported): to remind you of a ballot there"
    )
    wallets: list[WalletOut] = Field(
        description="Your voucher wallets in rounds that are open, as their events told it (to remind you of vouchers "
        "left before a round closes)"
    )
    ballot_rounds: list[uuid.UUID] = Field(
        description="The open Equal Shares rounds in which you cast a ballot (so you are not reminded to vote); not "
        "what you chose"
    )


@me_router.get("/export", summary="Everything this service holds about you (AVG/GDPR article 15)")
async def export_personal_data(caller: Caller, request: Request) -> PersonalDataExport:
    async with _unit_of_work(request) as uow:
        held = await privacy.export(uow, caller.subject)
    return PersonalDataExport(
        subject=held.subject,
        contact_details=StoredContactDetails(**dict(held.contact)) if held.contact else None,
        preferences=StoredPreferences(**dict(held.preferences)) if held.preferences else None,
        area_follows=held.area_follows,
        official_areas=held.official_areas,
        involvement=[InvolvementOut.model_validate(involved) for involved in held.involvement],
        inbox=[NotificationOut.model_validate(m) for m in held.messages if m.channel == "inbox"],
        email=[NotificationOut.model_validate(m) for m in held.messages if m.channel == "email"],
        webhook_subscriptions=[CreatedSubscription.model_validate(s) for s in held.webhook_subscriptions],
        areas_lived_in=held.areas_lived_in,
        wallets=[WalletOut(**dict(wallet)) for wallet in held.wallets],
        ballot_rounds=held.ballot_rounds,
    )


@me_router.delete(
    "",
    status_code=202,
    response_class=Response,  # accepted, with no body
    summary="Forget me: every service erases what it holds about you",
    description="This service erases at once everything it holds about you: your address, preferences, followed "
    "areas and every message to you. It then tells every other service (`ResidentForgetRequested`), which each erase "
    "what they hold soon after: 202, as that part follows. Records the neighbourhood relies on stay without you: "
    "money records keep their amounts and public initiatives their texts, with a tombstone where your id was. To "
    "stop email only, `DELETE /api/v1/contact-details/me` forgets just your address.",
)
async def forget_me(caller: Caller, request: Request) -> Response:
    async with _unit_of_work(request) as uow:
        await privacy.forget_me(uow, caller.subject)
        await uow.commit()
    return Response(status_code=202)
