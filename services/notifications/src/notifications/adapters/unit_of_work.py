"""The notifications service's unit of work: one transaction (see `buurtkracht_kit.db.UnitOfWork`) with the
repositories of this service on its connection, so HTTP requests, event handlers and the senders all reach
people, messages, webhooks, reminders and the kit's tables the same way. Commands reach the database only through these;
the adapters are the only modules that speak SQL. The service builds it (`Service.unit_of_work()`), with the
configured acquire timeout."""

from __future__ import annotations

import asyncpg

from buurtkracht_kit.db import UnitOfWork
from buurtkracht_kit.erasure import KitTables

from .areas import Areas
from .notifications import Notifications
from .people import People
from .reminders import Reminders
from .webhooks import Webhooks


class NotificationsUnitOfWork(UnitOfWork):
    people: People
    areas: Areas
    notifications: Notifications
    webhooks: Webhooks
    reminders: Reminders
    kit_tables: KitTables

    def bind(self, connection: asyncpg.Connection) -> None:
        self.people = People(connection)
        self.areas = Areas(connection)
        self.notifications = Notifications(connection)
        self.webhooks = Webhooks(connection)
        self.reminders = Reminders(connection)
        self.kit_tables = KitTables(connection)
