"""Webhook deliveries (being written)."""

from __future__ import annotations

from buurtkracht_contracts import Envelope
from buurtkracht_kit.db import UnitOfWork


async def enqueue(uow: UnitOfWork, envelope: Envelope) -> int:
    raise NotImplementedError


async def run_dispatcher(service) -> None:
    raise NotImplementedError
