"""The initiatives service's unit of work: one transaction (see `buurtkracht_kit.db.UnitOfWork`) with the
initiative repository and the kit's tables on its connection, so HTTP requests, event handlers and the expiry loop
all reach initiatives the same way. The service builds it (`Service.unit_of_work()`), with the configured acquire
timeout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from buurtkracht_kit import idempotency
from buurtkracht_kit.db import UnitOfWork
from buurtkracht_kit.erasure import KitTables

from .repository import InitiativeRepository


@dataclass(frozen=True)
class IdempotencyKeys:
    """The kit's `Idempotency-Key` records, on this transaction: a key is taken before the command runs."""

    connection: asyncpg.Connection

    async def begin(self, principal: str, key: str, fingerprint: str) -> idempotency.Replay | None:
        return await idempotency.begin(self.connection, principal, key, fingerprint)

    async def remember(self, principal: str, key: str, status_code: int, answer: Any) -> None:
        await idempotency.remember(self.connection, principal, key, status_code, answer)


class InitiativesUnitOfWork(UnitOfWork):
    initiatives: InitiativeRepository
    idempotency_keys: IdempotencyKeys
    kit_tables: KitTables

    def bind(self, connection: asyncpg.Connection) -> None:
        self.initiatives = InitiativeRepository(connection)
        self.idempotency_keys = IdempotencyKeys(connection)
        self.kit_tables = KitTables(connection)
