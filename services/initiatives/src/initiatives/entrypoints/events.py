"""Reactions to the vouchers service's events: an award funds the initiative, a round closing without
an award expires it. The kit's consumer makes each event take effect once (inbox in the same transaction).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from buurtkracht_contracts import Envelope
from buurtkracht_contracts.vouchers import InitiativeAwarded, RoundClosed

from ..adapters.unit_of_work import InitiativesUnitOfWork
from ..service import commands

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


HANDLERS = {InitiativeAwarded: on_initiative_awarded, RoundClosed: on_round_closed}
