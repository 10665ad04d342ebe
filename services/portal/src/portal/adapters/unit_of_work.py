"""The portal's unit of work: one transaction (see `buurtkracht_kit.db.UnitOfWork`) with the read model on its
connection, so event handlers and HTTP reads reach the read model the same way. The service builds it
(`Service.unit_of_work()`), with the configured acquire timeout."""

from __future__ import annotations

import asyncpg

from buurtkracht_kit.db import UnitOfWork

from .read_model import ReadModel


class PortalUnitOfWork(UnitOfWork):
    read_model: ReadModel

    def bind(self, connection: asyncpg.Connection) -> None:
        self.read_model = ReadModel(connection)
