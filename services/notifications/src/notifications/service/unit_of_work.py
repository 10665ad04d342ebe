"""The notifications service's unit of work: one transaction (see `buurtkracht_kit.db.UnitOfWork`) and the
repositories on its connection, so HTTP requests, event handlers and the senders all reach people's data the
same way. The service builds it (`Service.unit_of_work()`), with the configured acquire timeout."""

from __future__ import annotations

import asyncpg

from buurtkracht_kit.db import UnitOfWork

from ..adapters.people import People


class NotificationsUnitOfWork(UnitOfWork):
    people: People

    def bind(self, connection: asyncpg.Connection) -> None:
        self.people = People(connection)
