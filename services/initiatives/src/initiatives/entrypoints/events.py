"""Reactions to the vouchers service's events: an award funds the initiative, a round closing without
an award expires it; and to a resident's request to be forgotten (told by the notifications service). The kit's
consumer makes each event take effect once (inbox in the same transaction).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from buurtkracht_contracts import Envelope
from buurtkracht_contracts.notifications import ResidentForgetRequested
from buurtkracht_contracts.vouchers import InitiativeAwarded, RoundClosed

from ..adapters.unit_of_work import InitiativesUnitOfWork
from ..service import commands, privacy

logger = logging.getLogger(__name__)


async def on_initiative_awarded(uow: InitiativesUnitOfWork, event: InitiativeAwarded, envelope: Envelope) -> None:
    funded = await commands.mark_funded(
        uow, event.initiative_id, event.round_id, event.awarded_amount_cents, datetime.now(UTC)
    )
    if funded is None:
        logger.warning("award for initiative %s ignored: it is no longer approved", event.initiative_id)


async def on_round_closed(uow: InitiativesUnitOfWork, event: RoundClosed, envelope: Envelope) -> None:
    for initiative_id in event.summary.unawarded_initiative_ids:
        await commands.expire_unawarded(uow, initiative_id, event.round_id, datetime.now(UTC))


async def on_resident_forget_requested(
    uow: InitiativesUnitOfWork, event: ResidentForgetRequested, envelope: Envelope
) -> None:
    await privacy.forget_resident(uow, event.resident_id, event.tombstone)


HANDLERS = {
    InitiativeAwarded: on_initiative_awarded,
    RoundClosed: on_round_closed,
    ResidentForgetRequested: on_resident_forget_requested,
}
