"""Every initiatives and vouchers event: work out who hears of it (and how), learn the deadlines reminders are sent
for, and queue its webhook deliveries — all in the consumer's transaction, so a redelivered event adds nothing; a
person it names who was forgotten is read as their tombstone. And a resident's request to be forgotten, which this
service publishes and hears back: applied again, it finds nothing left (or what came meanwhile). An area registered
(or renamed) is kept, so messages show its name."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from buurtkracht_contracts import Envelope, Event
from buurtkracht_contracts.initiatives import AreaRegistered
from buurtkracht_contracts.notifications import ResidentForgetRequested
from buurtkracht_contracts.registry import models_on
from buurtkracht_contracts.topics import INITIATIVES_EVENTS, VOUCHERS_EVENTS

from ..adapters.unit_of_work import NotificationsUnitOfWork
from ..service import notify, privacy, reminders, webhooks


async def on_event(uow: NotificationsUnitOfWork, event: Event, envelope: Envelope) -> None:
    event, envelope = await privacy.without_the_forgotten(uow, event, envelope)
    await notify.handle(uow, event, envelope)
    await reminders.learn(uow, event, envelope)
    await webhooks.enqueue(uow, envelope)


async def on_resident_forget_requested(
    uow: NotificationsUnitOfWork, event: ResidentForgetRequested, envelope: Envelope
) -> None:
    await privacy.forget_resident(uow, event.resident_id, event.tombstone)


async def on_area_registered(uow: NotificationsUnitOfWork, event: AreaRegistered, envelope: Envelope) -> None:
    await uow.areas.register(event.code, event.name, event.kind)
    await webhooks.enqueue(uow, envelope)


HANDLERS: dict[type[Event], Callable[[NotificationsUnitOfWork, Any, Envelope], Awaitable[None]]] = {
    **{model: on_event for model in models_on(INITIATIVES_EVENTS) + models_on(VOUCHERS_EVENTS)},
    ResidentForgetRequested: on_resident_forget_requested,
    AreaRegistered: on_area_registered,
}
