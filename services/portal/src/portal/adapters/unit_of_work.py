"""The portal's unit of work: one transaction (see `buurtkracht_kit.db.UnitOfWork`) with the read model and the web
sessions on its connection, so event handlers, HTTP reads and pages reach them the same way. The service builds it
(`Service.unit_of_work()`), with the configured acquire timeout."""

from __future__ import annotations

import asyncpg

from buurtkracht_kit.db import UnitOfWork

from .areas import Areas
from .read_model import ReadModel
from .web_sessions import WebSessions


class PortalUnitOfWork(UnitOfWork):
    read_model: ReadModel
    areas: Areas
    sessions: WebSessions

    def bind(self, connection: asyncpg.Connection) -> None:
        self.read_model = ReadModel(connection)
        self.sessions = WebSessions(connection)
        self.areas = Areas(connection)
