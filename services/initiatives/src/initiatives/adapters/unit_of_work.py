"""The initiatives service's unit of work: one transaction (see `buurtkracht_kit.db.UnitOfWork`) with the
initiative repository and the kit's tables on its connection, so HTTP requests, event handlers and the expiry loop
all reach initiatives the same way. The service builds it (`Service.unit_of_work()`), with the configured acquire
timeout."""

from __future__ import annotations

import asyncpg

from buurtkracht_kit.db import UnitOfWork
from buurtkracht_kit.erasure import KitTables
from buurtkracht_kit.idempotency import IdempotencyKeys

from .areas import AreaRepository
from .help import HelpRepository
from .repository import InitiativeRepository


class InitiativesUnitOfWork(UnitOfWork):
    initiatives: InitiativeRepository
    areas: AreaRepository
    help: HelpRepository
    idempotency_keys: IdempotencyKeys
    kit_tables: KitTables

    def bind(self, connection: asyncpg.Connection) -> None:
        self.initiatives = InitiativeRepository(connection)
        self.areas = AreaRepository(connection)
        self.help = HelpRepository(connection)
        self.idempotency_keys = IdempotencyKeys(connection)
        self.kit_tables = KitTables(connection)
