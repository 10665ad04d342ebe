"""Every initiatives and vouchers event: work out who hears of it (and how), and queue its webhook
deliveries — both in the consumer's transaction, so a redelivered event adds nothing."""

from __future__ import annotations

from buurtkracht_contracts import Envelope, Event
from buurtkracht_contracts.registry import models_on
from buurtkracht_contracts.topics import INITIATIVES_EVENTS, VOUCHERS_EVENTS

from ..adapters.unit_of_work import NotificationsUnitOfWork
from ..service import notify, webhooks


async def on_event(uow: NotificationsUnitOfWork, event: Event, envelope: Envelope) -> None:
    await notify.handle(uow, event, envelope)
    await webhooks.enqueue(uow, envelope)


HANDLERS = {model: on_event for model in models_on(INITIATIVES_EVENTS) + models_on(VOUCHERS_EVENTS)}
