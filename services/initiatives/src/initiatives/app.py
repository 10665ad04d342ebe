"""Wiring of the initiatives service: its routes, the events it reacts to, and its periodic work."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import Gauge

from buurtkracht_contracts.registry import models_on
from buurtkracht_contracts.topics import INITIATIVES_EVENTS
from buurtkracht_kit.periodic import every
from buurtkracht_kit.runtime import Service, ServiceSpec

from .adapters.unit_of_work import InitiativesUnitOfWork
from .entrypoints import areas_http, events, help_http, http
from .service import commands, help
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


async def ask_neighbours_periodically(service: Service) -> None:
    """Every `asking_seconds`: open help requests are matched with offers and fitting neighbours asked."""
    settings: InitiativesSettings = service.settings  # type: ignore[assignment]
    await every(settings.asking_seconds, lambda: ask_neighbours(service, datetime.now(UTC)), "asking neighbours")


async def ask_neighbours(service: Service, now: datetime) -> int:
    """One asking pass at `now` over every open request, a batch of requests per transaction (oldest first), unless
    another pass holds the turn; then the offers metric is refreshed. Returns how many asks were sent."""
    settings: InitiativesSettings = service.settings  # type: ignore[assignment]
    rules = service.app.state.help_rules
    sent = 0
    after = None
    while True:
        async with service.unit_of_work() as uow:
            done = await help.ask_neighbours(uow, rules, now, settings.asking_batch_size, after)  # type: ignore[arg-type]
            await uow.commit()
        if done is None:
            logger.info("another asking pass is running; this one waits for its next round")
            break
        if done.asked:
            sent += done.asked
            help_http.asks_counter(service.metrics.registry).labels("sent").inc(done.asked)
            logger.info("%d neighbours asked for %d help requests", done.asked, done.requests)
        if done.following is None:
            break
        after = done.following
    async with service.unit_of_work() as uow:
        counts = await uow.help.offers_by_wijk_and_tag()  # type: ignore[attr-defined]
    gauge = _offers_gauge(service)
    gauge.clear()
    for wijk, tag, offers in counts:
        gauge.labels(wijk, tag).set(offers)
    return sent


_GAUGES: dict[int, Gauge] = {}


def _offers_gauge(service: Service) -> Gauge:
    """`buurtkracht_help_offers{wijk,tag}`: residents offering help, by the wijk they live in and the tag. Labelled
    by wijk, not buurt, so a city has some hundreds of series (about 100 wijken times the tag list), not thousands."""
    registry = service.metrics.registry
    if id(registry) not in _GAUGES:
        _GAUGES[id(registry)] = Gauge(
            "buurtkracht_help_offers",
            "Residents offering help, by wijk and tag",
            ["wijk", "tag"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
    return _GAUGES[id(registry)]


SPEC = ServiceSpec(
    name="initiatives",
    title="Buurtkracht initiatives",
    version="1.0.0",
    description="Residents propose neighbourhood initiatives, neighbours support and join them, officials review "
    "them, and initiators report what they did and spent.",
    migrations=Path(__file__).resolve().parents[2] / "migrations",
    routers=[
        http.router,
        http.me_router,
        areas_http.router,
        help_http.offers_router,
        help_http.requests_router,
        help_http.asks_router,
        help_http.statistics_router,
    ],
    larger_bodies={r"^/api/v1/areas$": areas_http.MAX_IMPORT_BYTES},  # the CBS file a municipality imports
    subscribed_topics=sorted({model.topic for model in events.HANDLERS}),  # the topics of the events it handles
    handlers=events.HANDLERS,
    background=[expire_overdue_initiatives, ask_neighbours_periodically],
    publishes=models_on(INITIATIVES_EVENTS),
    unit_of_work=InitiativesUnitOfWork,
)


def create(settings: InitiativesSettings | None = None) -> Service:
    settings = settings or InitiativesSettings()
    service = Service(SPEC, settings)
    service.app.state.service = service
    service.app.state.rules = settings.rules()
    service.app.state.help_rules = settings.help_rules()
    return service
