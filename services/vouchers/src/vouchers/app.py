"""Wiring of the vouchers service: routes, reactions to initiative events and to a resident forgotten, round closing
and the ledger check."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import Gauge

from buurtkracht_contracts.registry import models_on
from buurtkracht_contracts.topics import VOUCHERS_EVENTS
from buurtkracht_kit.periodic import every
from buurtkracht_kit.runtime import Service, ServiceSpec

from .adapters.unit_of_work import VouchersUnitOfWork
from .entrypoints import events, http
from .service import rounds
from .settings import VouchersSettings

logger = logging.getLogger(__name__)


async def close_due_rounds(service: Service) -> None:
    """Rounds close themselves at `closes_at`."""
    settings: VouchersSettings = service.settings  # type: ignore[assignment]

    async def close() -> None:
        closed = await rounds.close_due_rounds(service.unit_of_work, datetime.now(UTC))  # type: ignore[arg-type]
        if closed:
            logger.info("closed %d rounds whose closing time passed", closed)

    await every(settings.round_closing_check_seconds, close, "closing due rounds")


async def check_ledger(service: Service) -> None:
    """Verify every ledger invariant now and then; operators alert on the gauge."""
    settings: VouchersSettings = service.settings  # type: ignore[assignment]
    failures = Gauge(
        "buurtkracht_ledger_check_failures",
        "Ledger invariants violated at the last check",
        registry=service.metrics.registry,
    )
    checked = Gauge(
        "buurtkracht_ledger_check_timestamp_seconds",
        "When the ledger was last checked",
        registry=service.metrics.registry,
    )

    async def check() -> None:
        uow: VouchersUnitOfWork
        async with service.unit_of_work() as uow:  # type: ignore[assignment]
            problems = await uow.ledger.check()
        failures.set(len(problems))
        checked.set_to_current_time()
        for problem in problems[:20]:
            logger.error("ledger check: %s", problem)

    await every(settings.ledger_check_seconds, check, "checking the ledger")


SPEC = ServiceSpec(
    name="vouchers",
    title="Buurtkracht vouchers",
    version="1.0.0",
    description="Neighbourhood budgets as vouchers: rounds, wallets, pledges, steering group awards, expense "
    "claims and payouts, on a double-entry ledger in integer cents.",
    migrations=Path(__file__).resolve().parents[2] / "migrations",
    routers=[http.router],
    subscribed_topics=sorted({model.topic for model in events.HANDLERS}),  # the topics of the events it handles
    handlers=events.HANDLERS,
    background=[close_due_rounds, check_ledger],
    publishes=models_on(VOUCHERS_EVENTS),
    unit_of_work=VouchersUnitOfWork,
    larger_bodies={r"/wallet-issuances$": 256 << 20},  # up to 2,000,000 resident ids in one upload
)


def create(settings: VouchersSettings | None = None) -> Service:
    service = Service(SPEC, settings or VouchersSettings())
    service.app.state.service = service
    return service
