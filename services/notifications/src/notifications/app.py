"""Wiring of the notifications service: its APIs, the events it hears, and its senders (email, digests, webhooks,
reminders)."""

from __future__ import annotations

from pathlib import Path

from buurtkracht_contracts.registry import models_on
from buurtkracht_contracts.topics import NOTIFICATIONS_EVENTS
from buurtkracht_kit.runtime import Service, ServiceSpec

from .adapters import notifications as messages
from .adapters import people
from .adapters import reminders as reminded
from .adapters import webhooks as deliveries
from .adapters.unit_of_work import NotificationsUnitOfWork
from .entrypoints import events, http, webhooks_http
from .service import dispatch, reminders, webhooks
from .settings import NotificationsSettings

SPEC = ServiceSpec(
    name="notifications",
    title="Buurtkracht notifications",
    version="1.0.0",
    description="Residents, initiators and officials hear what happens (email, in-app inbox, digests, nl/en) and are "
    "reminded of their deadlines; integrations get signed webhooks (Standard Webhooks).",
    migrations=Path(__file__).resolve().parents[2] / "migrations",
    routers=[http.router, http.me_router, webhooks_http.router],
    subscribed_topics=sorted({model.topic for model in events.HANDLERS}),  # its own too: ResidentForgetRequested
    handlers=events.HANDLERS,
    background=[
        dispatch.send_due_email,
        dispatch.send_due_digests,
        webhooks.run_dispatcher,
        reminders.send_due_reminders,
    ],
    sweeps=lambda settings: [
        *deliveries.sweeps(settings.webhook_delivery_retention_days),
        *messages.sweeps(settings.message_retention_days),
        *people.sweeps(settings.inbox_retention_days),
        *reminded.sweeps(settings.inbox_retention_days),
    ],
    publishes=models_on(NOTIFICATIONS_EVENTS),
    unit_of_work=NotificationsUnitOfWork,
)


def create(settings: NotificationsSettings | None = None) -> Service:
    service = Service(SPEC, settings or NotificationsSettings())
    service.app.state.service = service
    return service
