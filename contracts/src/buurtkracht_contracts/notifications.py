"""Events of the notifications service: for operators, what was delivered, what failed, which webhook
subscriptions were disabled; for every service, a resident's request to be forgotten. People appear as
pseudonymous ids; no addresses, no message text."""

from __future__ import annotations

import re
import uuid
from typing import ClassVar, Literal

from pydantic import Field

from .event import TYPE_PREFIX, Event
from .personal import PersonId
from .registry import register
from .topics import NOTIFICATIONS_EVENTS

Channel = Literal["email", "inbox"]

TOMBSTONE_PATTERN = r"^forgotten-[0-9a-f]{32}$"
_TOMBSTONE = re.compile(TOMBSTONE_PATTERN)


def new_tombstone() -> str:
    """What replaces a forgotten resident's id: `forgotten-` and 32 random hex digits, naming nobody."""
    return f"forgotten-{uuid.uuid4().hex}"


def is_tombstone(person_id: str) -> bool:
    """Whether `person_id` stands for a resident who was forgotten: nobody to tell anything."""
    return bool(_TOMBSTONE.fullmatch(person_id))


def _type(name: str, version: int = 1) -> str:
    return f"{TYPE_PREFIX}.notifications.{name}.v{version}"


class NotificationEvent(Event):
    aggregate_type: ClassVar[str] = "notification"
    topic: ClassVar[str] = NOTIFICATIONS_EVENTS

    notification_id: uuid.UUID
    recipient_id: PersonId
    channel: Channel
    kind: str
    source_event_id: uuid.UUID | None

    def subject(self) -> str:
        return str(self.notification_id)


@register
class NotificationSent(NotificationEvent):
    event_type: ClassVar[str] = _type("notification-sent")
    attempts: int


@register
class NotificationFailed(NotificationEvent):
    """Sending failed; `final` when no more attempts will be made."""

    event_type: ClassVar[str] = _type("notification-failed")
    attempts: int
    error: str
    final: bool


class WebhookEvent(Event):
    aggregate_type: ClassVar[str] = "webhook-subscription"
    topic: ClassVar[str] = NOTIFICATIONS_EVENTS

    subscription_id: uuid.UUID

    def subject(self) -> str:
        return str(self.subscription_id)


@register
class WebhookDeliveryFailed(WebhookEvent):
    """A delivery gave up after its last attempt."""

    event_type: ClassVar[str] = _type("webhook-delivery-failed")
    delivery_id: uuid.UUID
    source_event_id: uuid.UUID
    attempts: int
    last_status_code: int | None
    error: str


@register
class WebhookSubscriptionDisabled(WebhookEvent):
    event_type: ClassVar[str] = _type("webhook-subscription-disabled")
    reason: Literal["gone", "repeated_failures"]
    admin_id: PersonId


@register
class ResidentForgetRequested(Event):
    """A resident asked to be forgotten (AVG/GDPR article 17). Every service that holds data about `resident_id`
    erases what it may erase and replaces the id by `tombstone` where a record must stay (money records keep their
    amounts, so the ledger still balances; public initiatives stay, without who made them). The same tombstone in
    every service, so records that belonged together still do."""

    event_type: ClassVar[str] = _type("resident-forget-requested")
    aggregate_type: ClassVar[str] = "resident"
    topic: ClassVar[str] = NOTIFICATIONS_EVENTS

    resident_id: PersonId
    tombstone: str = Field(pattern=TOMBSTONE_PATTERN, description="What replaces the resident's id")

    def subject(self) -> str:
        return self.resident_id
