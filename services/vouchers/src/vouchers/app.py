"""Wiring of the vouchers service: routes, reactions to initiative events and to a resident forgotten, round closing
and the ledger check."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from prometheus_client import Gauge

from buurtkracht_contracts.registry import models_on
from buurtkracht_contracts.topics import VOUCHERS_EVENTS
from buurtkracht_kit.periodic import every
from buurtkracht_kit.runtime import Service, ServiceSpec

from .adapters.unit_of_work import VouchersUnitOfWork
from .domain.banking import BankAccount, Debtor
from .entrypoints import events, http
from .service import payouts, rounds
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


def banking_of(settings: VouchersSettings) -> payouts.Banking:
    """The municipality's payout account from the settings, checked as any bank account is (a bad IBAN stops the
    service at its start, not at the first batch)."""
    account = BankAccount.parse(
        settings.payout_debtor_iban, settings.payout_debtor_bic, settings.payout_debtor_name, "payout_debtor_"
    )
    assert account.bic is not None, "the municipality's bank needs a BIC"
    return payouts.Banking(
        Debtor(account.holder, account.iban, account.bic),
        settings.payout_batch_closing_time,
        ZoneInfo(settings.payout_batch_time_zone),
    )


async def close_due_payout_batch(service: Service) -> None:
    """The open payout batch closes itself daily at its closing time (see `payouts.close_due_batch`)."""
    settings: VouchersSettings = service.settings  # type: ignore[assignment]
    banking = banking_of(settings)

    async def close() -> None:
        closed = await payouts.close_due_batch(service.unit_of_work, banking, datetime.now(UTC))  # type: ignore[arg-type]
        if closed:
            logger.info("closed payout batch %s: %d payouts", closed.id, closed.payout_count)

    await every(settings.payout_batch_check_seconds, close, "closing the due payout batch")


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
    background=[close_due_rounds, check_ledger, close_due_payout_batch],
    publishes=models_on(VOUCHERS_EVENTS),
    unit_of_work=VouchersUnitOfWork,
    larger_bodies={r"/wallet-issuances$": 256 << 20},  # up to 2,000,000 resident ids in one upload
)


def create(settings: VouchersSettings | None = None) -> Service:
    service = Service(SPEC, settings or VouchersSettings())
    service.app.state.service = service
    service.app.state.banking = banking_of(service.settings)  # type: ignore[arg-type]
    return service
