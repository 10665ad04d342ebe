"""Wiring of the portal: the public API and the events its read model is built from. It publishes nothing."""

from __future__ import annotations

from pathlib import Path

from buurtkracht_kit.runtime import Service, ServiceSpec

from .adapters.unit_of_work import PortalUnitOfWork
from .entrypoints import events, http
from .settings import PortalSettings

SPEC = ServiceSpec(
    name="portal",
    title="Buurtkracht portal",
    version="1.0.0",
    description="The public read side: initiatives per area with their status, support and pledges, one initiative "
    "with its budget and report, and the open budget rounds of an area. Anyone may read it without signing in; it "
    "is answered from the portal's own read model, built from the events of the other services.",
    migrations=Path(__file__).resolve().parents[2] / "migrations",
    routers=[http.router],
    subscribed_topics=sorted({model.topic for model in events.HANDLERS}),  # the topics of the events it handles
    handlers=events.HANDLERS,
    unit_of_work=PortalUnitOfWork,
)


def create(settings: PortalSettings | None = None) -> Service:
    settings = settings or PortalSettings()
    service = Service(SPEC, settings)
    service.app.state.service = service
    return service
