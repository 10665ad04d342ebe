"""What this service holds about a person: all of it for them to read (`export`, AVG/GDPR article 15), and
forgetting a resident who asked to be forgotten (`forget_resident`, article 17), in the unit of work of the
`ResidentForgetRequested` event.

Forgetting keeps what the neighbourhood relies on and erases what is the resident's own:
- an initiative they own or co-initiate stays public as it was, with the tombstone as (co-)initiator; an open
  invitation to them is gone. Its texts, budget, report and review notes stay: they are the initiative's, written
  for the public or by officials;
- their supports and volunteer sign-ups count on under the tombstone, so no count changes; the offer they wrote
  when they signed up is erased (an empty text);
- the transitions they made keep their place in each history, with the tombstone as actor;
- their offer of help is deleted; their asks (and the help requests they made) count on under the tombstone, an
  unanswered ask withdrawn, so the officials' counts do not change and nobody asks the tombstone anything;
- the kit's tables (unpublished events, stored answers, failures): see `buurtkracht_kit.erasure`.
The tombstone stands for one resident only, so no two people ever share a support or a sign-up. Applying it again,
or for a resident the service never saw, finds nothing and changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from buurtkracht_kit.auth import Principal

from ..adapters.help import StoredAsk
from ..adapters.repository import Made, Supported, Volunteering
from ..adapters.unit_of_work import InitiativesUnitOfWork
from ..domain.help import Offer
from ..domain.model import Initiative

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Export:
    """Everything the service holds about `subject`."""

    subject: str
    initiatives: list[Initiative]
    supports: list[Supported]
    volunteering: list[Volunteering]
    transitions: list[Made]
    offer: Offer | None
    asks: list[StoredAsk]


async def export(uow: InitiativesUnitOfWork, actor: Principal) -> Export:
    """The initiatives the caller owns, co-initiates or is invited to (oldest first), what they support and volunteer
    for, and the transitions they made. Any signed-in caller, about themselves only."""
    subject = actor.subject
    initiatives = await uow.initiatives.involving(subject)
    return Export(
        subject,
        sorted(initiatives, key=lambda initiative: (initiative.created_at, initiative.id)),
        await uow.initiatives.supports_of(subject),
        await uow.initiatives.volunteering_of(subject),
        await uow.initiatives.made_by(subject),
        await uow.help.offer_of(subject),
        await uow.help.asks_of(subject),
    )


async def forget_resident(uow: InitiativesUnitOfWork, resident_id: str, tombstone: str) -> None:
    """Forget `resident_id` as the module docstring says. Their initiatives are locked first, in id order, as a
    command locks its initiative before the rows that hang from it."""
    initiatives = 0
    for initiative in await uow.initiatives.involving(resident_id, for_update=True):
        if initiative.forget(resident_id, tombstone):
            await uow.initiatives.save_people(initiative)
            initiatives += 1
    supports = await uow.initiatives.forget_supporter(resident_id, tombstone)
    volunteering = await uow.initiatives.forget_volunteer(resident_id, tombstone)
    transitions = await uow.initiatives.forget_actor(resident_id, tombstone)
    offers, asks = await uow.help.forget(resident_id, tombstone)
    await uow.kit_tables.forget(resident_id, tombstone)
    logger.info(
        "resident forgotten as %s: %d initiatives, %d supports, %d volunteer sign-ups, %d transitions, %d offers, "
        "%d asks",
        tombstone,
        initiatives,
        supports,
        volunteering,
        transitions,
        offers,
        asks,
    )
