"""The notifications service's unit of work: one transaction (see `buurtkracht_kit.db.UnitOfWork`) with the
repositories of this service on its connection, so HTTP requests, event handlers and the senders all reach
people, messages and webhooks the same way. Commands reach the database only through these; the adapters are
the only modules that speak SQL. The service builds it (`Service.unit_of_work()`), with the configured acquire
timeout."""

from __future__ import annotations

import asyncpg

from buurtkracht_kit.db import UnitOfWork

from .notifications import Notifications
from .people import People
from .webhooks import Webhooks


class NotificationsUnitOfWork(UnitOfWork):
    people: People
    notifications: Notifications
    webhooks: Webhooks

    def bind(self, connection: asyncpg.Connection) -> None:
        self.people = People(connection)
        self.notifications = Notifications(connection)
        self.webhooks = Webhooks(connection)
