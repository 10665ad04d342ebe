"""Reactions to the initiatives service: an approved initiative may receive pledges or an award; a
withdrawn one gets its pledges returned; a completed or cancelled one returns its unspent budget."""

from __future__ import annotations

from buurtkracht_contracts import Envelope
from buurtkracht_contracts import initiatives as events
from buurtkracht_kit.db import UnitOfWork

from ..service import commands


async def on_approved(uow: UnitOfWork, event: events.InitiativeApproved, envelope: Envelope) -> None:
    await commands.initiative_approved(
        uow, event.initiative_id, event.area_code, event.title, event.initiators, event.approved_amount_cents
    )


async def on_withdrawn(uow: UnitOfWork, event: events.InitiativeWithdrawn, envelope: Envelope) -> None:
    await commands.initiative_withdrawn(uow, event.initiative_id)


async def on_completed(uow: UnitOfWork, event: events.InitiativeCompleted, envelope: Envelope) -> None:
    await commands.initiative_finished(uow, event.initiative_id, cancelled=False)


async def on_cancelled(uow: UnitOfWork, event: events.InitiativeCancelled, envelope: Envelope) -> None:
    await commands.initiative_finished(uow, event.initiative_id, cancelled=True)


HANDLERS = {
    events.InitiativeApproved: on_approved,
    events.InitiativeWithdrawn: on_withdrawn,
    events.InitiativeCompleted: on_completed,
    events.InitiativeCancelled: on_cancelled,
}
