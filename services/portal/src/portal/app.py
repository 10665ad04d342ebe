"""Wiring of the portal: its pages, the public API and the events its read model is built from. It publishes
nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx

from buurtkracht_kit.housekeeping import Sweep
from buurtkracht_kit.runtime import Service, ServiceSpec

from .adapters.unit_of_work import PortalUnitOfWork
from .entrypoints import events, http, web
from .settings import PortalSettings

SPEC = ServiceSpec(
    name="portal",
    title="Buurtkracht portal",
    version="1.0.0",
    description="The public read side: initiatives per area with their status, support and pledges, one initiative "
    "with its budget and report, and the open budget rounds of an area. Anyone may read it without signing in; it "
    "is answered from the portal's own read model, built from the events of the other services.",
    migrations=Path(__file__).resolve().parents[2] / "migrations",
    routers=[http.router, web.router],
    subscribed_topics=sorted({model.topic for model in events.HANDLERS}),  # the topics of the events it handles
    handlers=events.HANDLERS,
    unit_of_work=PortalUnitOfWork,
    sweeps=lambda settings: [Sweep("web_sessions", "expires_at", timedelta(0))],  # expired sign-ins
)


def create(settings: PortalSettings | None = None, web_transport: httpx.AsyncBaseTransport | None = None) -> Service:
    """The portal; its pages call the other services through `web_transport` if given (tests), else over the
    network."""
    settings = settings or PortalSettings()
    service = Service(SPEC, settings)
    service.web_transport = web_transport  # type: ignore[attr-defined]
    service.web_services = None  # type: ignore[attr-defined]
    service.identity_provider = None  # type: ignore[attr-defined]
    web.install(service.app)
    service.app.state.service = service
    return service
