"""Wiring of the initiatives service: its routes, the events it reacts to, and its periodic work."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from buurtkracht_contracts.registry import models_on
from buurtkracht_contracts.topics import INITIATIVES_EVENTS
from buurtkracht_kit.periodic import every
from buurtkracht_kit.runtime import Service, ServiceSpec

from .adapters.unit_of_work import InitiativesUnitOfWork
from .entrypoints import areas_http, events, http
from .service import commands
from .settings import InitiativesSettings

logger = logging.getLogger(__name__)


async def expire_overdue_initiatives(service: Service) -> None:
    """Every `expiry_check_seconds`: initiatives whose support period ended without enough support expire."""
    settings: InitiativesSettings = service.settings  # type: ignore[assignment]

    async def expire() -> None:
        expired = await commands.expire_overdue(service.unit_of_work, datetime.now(UTC))  # type: ignore[arg-type]
        if expired:
            logger.info("expired %d initiatives whose support period ended", expired)

    await every(settings.expiry_check_seconds, expire, "expiring overdue initiatives")


SPEC = ServiceSpec(
    name="initiatives",
    title="Buurtkracht initiatives",
    version="1.0.0",
    description="Residents propose neighbourhood initiatives, neighbours support and join them, officials review "
    "them, and initiators report what they did and spent.",
    migrations=Path(__file__).resolve().parents[2] / "migrations",
    routers=[http.router, http.me_router, areas_http.router],
    larger_bodies={r"^/api/v1/areas$": areas_http.MAX_IMPORT_BYTES},  # the CBS file a municipality imports
    subscribed_topics=sorted({model.topic for model in events.HANDLERS}),  # the topics of the events it handles
    handlers=events.HANDLERS,
    background=[expire_overdue_initiatives],
    publishes=models_on(INITIATIVES_EVENTS),
    unit_of_work=InitiativesUnitOfWork,
)


def create(settings: InitiativesSettings | None = None) -> Service:
    settings = settings or InitiativesSettings()
    service = Service(SPEC, settings)
    service.app.state.service = service
    service.app.state.rules = settings.rules()
    return service
