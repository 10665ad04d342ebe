"""HTTP API of webhook subscriptions (`/api/v1/webhook-subscriptions`), for admins only.

The signing secret is answered once, to the admin who creates the subscription or rotates its secret; no other
answer holds it. Only an admin decides whether a subscription may see people's ids (`may_see_resident_ids`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictFloat

from buurtkracht_kit.auth import Principal, Role, require
from buurtkracht_kit.inputs import Line, Strict, Text
from buurtkracht_kit.paging import Offset

from ..adapters.unit_of_work import NotificationsUnitOfWork
from ..domain import webhooks as rules
from ..domain.webhooks import DeliveryStatus, Reason, SubscriptionStatus
from ..service import webhooks

router = APIRouter(prefix="/api/v1/webhook-subscriptions", tags=["webhooks"])

Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
EndpointUrl = Annotated[
    Line,
    Field(min_length=1, max_length=rules.MAX_URL_LENGTH, examples=["https://example.org/hooks/buurtkracht"]),
    AfterValidator(rules.check_url),
]
EventTypeFilter = Annotated[
    Line,
    Field(min_length=1, max_length=200, examples=["nl.buurtkracht.vouchers.*"]),
    AfterValidator(rules.check_filter),
]


MAY_SEE_RESIDENT_IDS = (
    "Whether deliveries carry people's pseudonymous ids as the events do. Without it (the default) every field "
    "an event's schema marks `x-personal` carries `p-` and 32 hex digits instead: the same for the same person in "
    "every delivery to this subscription, different in any other, so an integration can count people but not tell "
    "who they are; fields the published schema does not have are left out"
)


class NewSubscription(Strict):
    url: EndpointUrl = Field(description="Where deliveries are POSTed (http or https)")
    event_types: list[EventTypeFilter] = Field(
        default_factory=list,
        max_length=rules.MAX_FILTERS,
        description="CloudEvents types, or prefixes ending in `.*`; empty means every type",
    )
    description: Text = Field("", max_length=500)
    may_see_resident_ids: StrictBool = Field(False, description=MAY_SEE_RESIDENT_IDS)


class SubscriptionChange(Strict):
    """What to change; a field left out keeps its value."""

    url: EndpointUrl | None = None
    event_types: list[EventTypeFilter] | None = Field(None, max_length=rules.MAX_FILTERS)
    description: Text | None = Field(None, max_length=500)
    may_see_resident_ids: StrictBool | None = Field(None, description=MAY_SEE_RESIDENT_IDS)


class SubscriptionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    url: str
    event_types: list[str]
    description: str
    status: SubscriptionStatus
    disabled_reason: Reason | None
    disabled_at: datetime | None
    consecutive_failures: int
    created_by: str
    created_at: datetime
    previous_secret_until: datetime | None = Field(
        description="After a rotation: until when the replaced secret still signs deliveries beside the new one"
    )
    may_see_resident_ids: bool = Field(description=MAY_SEE_RESIDENT_IDS)


class SubscriptionWithSecret(SubscriptionOut):
    secret: str = Field(description="The Standard Webhooks signing secret (`whsec_...`); shown only in this answer")


class SecretRotation(Strict):
    overlap_hours: StrictFloat | None = Field(
        None,
        ge=0,
        le=168,
        description="How long the replaced secret goes on signing beside the new one (0: stop at once); "
        "by default the service's setting (24 hours)",
    )


class SubscriptionPage(BaseModel):
    items: list[SubscriptionOut]
    total: int
    limit: int
    offset: int


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="The `webhook-id` header of every attempt")
    event_id: uuid.UUID
    event_type: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None = Field(description="While pending; not sent while the subscription is disabled")
    delivered_at: datetime | None
    created_at: datetime


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    total: int
    limit: int
    offset: int


def _unit_of_work(request: Request) -> NotificationsUnitOfWork:
    return request.app.state.service.unit_of_work()


@router.post("", status_code=201, summary="Subscribe an endpoint to events; the answer holds the signing secret once")
async def create_subscription(
    body: NewSubscription, admin: Admin, request: Request, response: Response
) -> SubscriptionWithSecret:
    async with _unit_of_work(request) as uow:
        subscription, secret = await webhooks.create_subscription(
            uow,
            admin,
            url=body.url,
            event_types=body.event_types,
            description=body.description,
            may_see_resident_ids=body.may_see_resident_ids,
            allow_private_addresses=request.app.state.settings.webhook_allow_private_addresses,
        )
        await uow.commit()
    response.headers["Location"] = f"{router.prefix}/{subscription.id}"
    return SubscriptionWithSecret(**SubscriptionOut.model_validate(subscription).model_dump(), secret=secret)


@router.get("", summary="Every webhook subscription, newest first")
async def list_subscriptions(
    admin: Admin,
    request: Request,
    status: SubscriptionStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Offset = 0,
) -> SubscriptionPage:
    async with _unit_of_work(request) as uow:
        found, total = await uow.webhooks.subscriptions(status, limit, offset)
    return SubscriptionPage(
        items=[SubscriptionOut.model_validate(s) for s in found], total=total, limit=limit, offset=offset
    )


@router.get("/{subscription_id}", summary="One webhook subscription")
async def get_subscription(subscription_id: uuid.UUID, admin: Admin, request: Request) -> SubscriptionOut:
    async with _unit_of_work(request) as uow:
        subscription = await uow.webhooks.subscription(subscription_id)
    if subscription is None:
        raise webhooks.UnknownSubscription(subscription_id)
    return SubscriptionOut.model_validate(subscription)


@router.patch(
    "/{subscription_id}",
    summary="Change a subscription's endpoint, event-type filter, description, or whether it may see people's ids",
)
async def change_subscription(
    subscription_id: uuid.UUID, body: SubscriptionChange, admin: Admin, request: Request
) -> SubscriptionOut:
    async with _unit_of_work(request) as uow:
        subscription = await webhooks.change_subscription(
            uow,
            admin,
            subscription_id,
            url=body.url,
            event_types=body.event_types,
            description=body.description,
            may_see_resident_ids=body.may_see_resident_ids,
            allow_private_addresses=request.app.state.settings.webhook_allow_private_addresses,
        )
        await uow.commit()
    return SubscriptionOut.model_validate(subscription)


@router.delete("/{subscription_id}", status_code=204, summary="Stop and remove a subscription with its delivery log")
async def delete_subscription(subscription_id: uuid.UUID, admin: Admin, request: Request) -> Response:
    async with _unit_of_work(request) as uow:
        await webhooks.delete_subscription(uow, admin, subscription_id)
        await uow.commit()
    return Response(status_code=204)


@router.post(
    "/{subscription_id}/secret",
    summary="Rotate the signing secret; the answer holds the new one once, the old one signs beside it for a while",
)
async def rotate_secret(
    subscription_id: uuid.UUID, admin: Admin, request: Request, body: SecretRotation | None = None
) -> SubscriptionWithSecret:
    overlap = request.app.state.settings.webhook_secret_overlap_hours
    if body is not None and body.overlap_hours is not None:
        overlap = body.overlap_hours
    async with _unit_of_work(request) as uow:
        subscription, secret = await webhooks.rotate_secret(uow, admin, subscription_id, overlap)
        await uow.commit()
    return SubscriptionWithSecret(**SubscriptionOut.model_validate(subscription).model_dump(), secret=secret)


@router.get("/{subscription_id}/deliveries", summary="The delivery log of a subscription, newest first")
async def list_deliveries(
    subscription_id: uuid.UUID,
    admin: Admin,
    request: Request,
    status: DeliveryStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Offset = 0,
) -> DeliveryPage:
    async with _unit_of_work(request) as uow:
        if await uow.webhooks.subscription(subscription_id) is None:
            raise webhooks.UnknownSubscription(subscription_id)
        found, total = await uow.webhooks.deliveries(subscription_id, status, limit, offset)
    return DeliveryPage(items=[DeliveryOut.model_validate(d) for d in found], total=total, limit=limit, offset=offset)


@router.post("/{subscription_id}/enable", summary="Switch a disabled subscription on again; what waited is sent")
async def enable_subscription(subscription_id: uuid.UUID, admin: Admin, request: Request) -> SubscriptionOut:
    async with _unit_of_work(request) as uow:
        subscription = await webhooks.enable_subscription(uow, subscription_id)
        await uow.commit()
    return SubscriptionOut.model_validate(subscription)
