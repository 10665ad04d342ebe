"""What this service holds about a person: all of it for them to read (`export`, AVG/GDPR article 15), and
forgetting a resident who asked to be forgotten (`forget_resident`, article 17), in the unit of work of the
`ResidentForgetRequested` event.

Forgetting replaces the resident's id by the tombstone wherever a record must stay, and changes nothing else:
- money records keep every amount, status and decision: wallets (the ledger account's owner; the journal names
  a wallet a resident claimed by a digest of their id, and stays as it is), pledges, expense claims they made or
  decided; so every balance, every round's total and every ledger invariant is what it was;
- ballots of Equal Shares rounds keep their approvals (the votes sealed at a close never named anyone);
- committee records keep their decisions: the steering group memberships, the award proposals they made and the
  votes they cast;
- the initiatives they (co-)initiate, the rounds they opened and the steering groups they registered name the
  tombstone in their place;
- the kit's tables (unpublished events, stored answers, failures): see `buurtkracht_kit.erasure`;
- the bank accounts they gave for initiatives are removed, IBAN and holder's name (they may be theirs): the
  initiative's payouts that waited in the open payout batch wait outside it until an initiator gives an account
  again. The payouts they cancelled, the batches they closed and the statements they uploaded name the tombstone.
  A batch's file that went to the bank stays as it was: it is the municipality's record of what it paid, to whom.
What stays as written is the public or bookkeeping text of those records — an initiative's title, a round's name, a
claim's supplier, invoice reference and decision reason, a payout's bank reference: claims and payouts are the
municipality's financial records, which it must keep. The tombstone stands for one resident only, so no two people
ever share a wallet, a vote or a membership. Applying it again, or for a resident the service never saw, finds
nothing and changes nothing.

Locks, in the one order of every command (see `locking`): first the rounds the resident could act in meanwhile —
those they hold a wallet in, those of the areas whose steering group they are a member of, those they opened —
exclusively and in id order, so no pledge, vote, claim or decision of theirs is in flight while they are forgotten;
then the initiatives' rows, the pledge, claim and proposal rows, and the accounts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from buurtkracht_kit.auth import Principal

from ..adapters.awards import Cast
from ..adapters.rounds import RoundLock
from ..adapters.steering import GroupRegistration, Membership
from ..adapters.unit_of_work import VouchersUnitOfWork
from ..domain.awards import Award
from ..domain.ballots import Ballot
from ..domain.banking import Payee, PayoutBatch
from ..domain.initiatives import Initiative
from ..domain.pledges import Pledge, Wallet
from ..domain.rounds import Round
from ..domain.spending import Claim, Payout

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Export:
    """Everything the service holds about `subject`."""

    subject: str
    wallets: list[Wallet]
    pledges: list[Pledge]
    initiatives: list[Initiative]
    expense_claims: list[Claim]
    steering_group_memberships: list[Membership]
    award_proposals: list[Award]
    award_votes: list[Cast]
    rounds_opened: list[Round]
    steering_groups_registered: list[GroupRegistration]
    ballots: list[Ballot]
    bank_accounts_given: list[Payee]
    payouts_cancelled: list[Payout]
    payout_batches_closed: list[PayoutBatch]
    bank_statements_uploaded: list[str]


async def export(uow: VouchersUnitOfWork, actor: Principal) -> Export:
    """Any signed-in caller, about themselves only: their wallets with balances, pledges, the initiatives they
    (co-)initiate as this service knows them, the expense claims they made or decided, their steering group
    memberships, the award proposals they made and the votes they cast, and (officials) the rounds they opened and
    the steering groups they registered."""
    subject = actor.subject
    return Export(
        subject,
        await uow.ledger.wallets_of(subject),
        await uow.pledges.of_person(subject),
        await uow.initiatives.initiated_by(subject),
        await uow.claims.of_person(subject),
        await uow.steering_groups.memberships_of(subject),
        await uow.awards.proposed_by(subject),
        await uow.awards.cast_by(subject),
        await uow.rounds.opened_by(subject),
        await uow.steering_groups.registered_by(subject),
        await uow.ballots.of_resident(subject),
        await uow.payees.given_by(subject),
        await uow.payouts.cancelled_by(subject),
        await uow.payout_batches.closed_by(subject),
        await uow.statements.uploaded_by(subject),
    )


async def forget_resident(uow: VouchersUnitOfWork, resident_id: str, tombstone: str) -> None:
    """Forget `resident_id` as the module docstring says."""
    areas = [membership.area_code for membership in await uow.steering_groups.memberships_of(resident_id)]
    rounds = sorted(
        {wallet.round_id for wallet in await uow.ledger.wallets_of(resident_id)}
        | set(await uow.rounds.involving(resident_id, areas))
        | set(await uow.ballots.rounds_of(resident_id))
    )
    await uow.rounds.get_all(rounds, RoundLock.EXCLUSIVE)
    initiatives = await uow.initiatives.forget_initiator(resident_id, tombstone)
    pledges = await uow.pledges.forget_pledger(resident_id, tombstone)
    claims = await uow.claims.forget_person(resident_id, tombstone)
    committee = await uow.awards.forget_member(resident_id, tombstone)
    wallet_rounds = await uow.ledger.forget_wallets(resident_id, tombstone)
    await uow.ballots.forget_resident(resident_id, tombstone)
    opened = await uow.rounds.forget_creator(resident_id, tombstone)
    committee += await uow.steering_groups.forget_person(resident_id, tombstone)
    bank_accounts = await uow.payees.forget_person(resident_id)
    await uow.payout_batches.leave_open(bank_accounts)
    await uow.payouts.forget_canceller(resident_id, tombstone)
    await uow.payout_batches.forget_closer(resident_id, tombstone)
    await uow.statements.forget_uploader(resident_id, tombstone)
    await uow.kit_tables.forget(resident_id, tombstone)
    logger.info(
        "resident forgotten as %s: %d wallets, %d pledges, %d initiatives, %d expense claims, %d committee records, "
        "%d rounds opened, %d bank accounts",
        tombstone,
        len(wallet_rounds),
        pledges,
        initiatives,
        claims,
        committee,
        opened,
        len(bank_accounts),
    )
