"""Committee awards: a member of the steering group of the round's area proposes an award, every eligible member
votes with their own sign-in, and the vote that decides it moves the award from the round's pool to the
initiative's budget in the same transaction. Proposing and voting hold the round (shared), the initiative's row
— so an initiative is awarded once, and at most one proposal for it is open in a round — and then the proposal.

A proposal lapses, with no more votes, when nothing can award it any more: its round closed, or its initiative
was awarded (in any round), withdrawn or expired. The commands that do that call `lapse`.

The officials of the round's area and the members of its steering group read the proposals with who voted how;
a reader who (co-)initiates a proposal's initiative reads it with the counts and the outcome only."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from buurtkracht_contracts.refusals import NotAllowed, NotFound
from buurtkracht_kit.auth import Principal, Role

from ..adapters.unit_of_work import VouchersUnitOfWork
from ..domain.awards import Award, AwardStatus
from ..domain.initiatives import Initiative
from ..domain.ledger import Entry
from ..domain.rounds import Mechanism
from ..domain.steering import SteeringGroup, sees_ballots
from .access import found, is_member_for, is_official_for
from .locking import lock

KNOWN_APPROVED = "(the vouchers service knows approved initiatives only)"


@dataclass(frozen=True)
class AwardView:
    """A proposal as its readers see it: with the members eligible to vote on it now. `ballots_withheld` when the
    reader (co-)initiates its initiative: they see how many votes of each kind count and the outcome, not who voted
    how nor who proposed it (see `domain.steering.sees_ballots`)."""

    award: Award
    eligible_member_ids: list[str]
    ballots_withheld: bool = False


async def propose_award(
    uow: VouchersUnitOfWork,
    actor: Principal,
    round_id: uuid.UUID,
    initiative_id: uuid.UUID,
    amount_cents: int,
    now: datetime,
) -> AwardView:
    locked = await lock(uow, round_id=round_id, initiative_id=initiative_id)
    round_ = found(locked.round, f"round {round_id}")
    group = await uow.steering_groups.get(round_.area_code)
    group.require_voter(actor.subject, actor.has(Role.STEERING_GROUP))
    round_.require_mechanism(Mechanism.COMMITTEE, "award by committee")
    round_.require_open(now, "propose an award")
    initiative = found(locked.initiative, f"initiative {initiative_id} {KNOWN_APPROVED}")
    open_already = await uow.awards.open_for(round_id, initiative_id) is not None
    award, entry = Award.propose(
        round_, initiative, group, actor.subject, actor.has(Role.STEERING_GROUP), amount_cents, open_already, now
    )
    await uow.awards.add(award)
    await _decided(uow, award, entry, initiative)
    return AwardView(award, group.eligible_for(initiative))


async def cast_vote(
    uow: VouchersUnitOfWork, actor: Principal, round_id: uuid.UUID, award_id: uuid.UUID, vote: str, now: datetime
) -> AwardView:
    """The caller's own vote on the proposal (a vote again replaces theirs while it is open)."""
    locked = await lock(uow, round_id=round_id, award_id=award_id)
    round_ = found(locked.round, f"round {round_id}")
    award = found(locked.award, f"award proposal {award_id} in round {round_id}")
    initiative = found(locked.initiative, f"initiative {award.initiative_id}")
    group = await uow.steering_groups.get(round_.area_code)
    entry = award.cast(round_, initiative, group, actor.subject, actor.has(Role.STEERING_GROUP), vote, now)
    await uow.awards.save(award)
    await _decided(uow, award, entry, initiative)
    return AwardView(award, group.eligible_for(initiative))


async def _decided(uow: VouchersUnitOfWork, award: Award, entry: Entry | None, initiative: Initiative) -> None:
    """The proposal's events; when it was awarded, the award's money and the initiative, whose other open proposals
    lapse."""
    uow.collect(award)
    if entry is None:
        return
    await uow.ledger.post(award.round_id, entry)
    await uow.initiatives.save(initiative)
    await lapse(uow, initiative_ids=[initiative.id])
    uow.collect(initiative)


async def lapse(
    uow: VouchersUnitOfWork, *, round_id: uuid.UUID | None = None, initiative_ids: Sequence[uuid.UUID] = ()
) -> None:
    """The open proposals of the round (closed), or of these initiatives (no longer open for an award), lapse."""
    if round_id is not None or initiative_ids:
        await uow.awards.lapse_open(round_id=round_id, initiative_ids=initiative_ids)


# -- reading --------------------------------------------------------------------------------------


async def _readable_group(uow: VouchersUnitOfWork, actor: Principal, round_id: uuid.UUID) -> SteeringGroup:
    round_ = found(await uow.rounds.get(round_id), f"round {round_id}")
    if not (is_official_for(actor, round_.area_code) or await is_member_for(uow, actor, round_.area_code)):
        raise NotAllowed(
            f"only officials responsible for {round_.area_code} and the members of its steering group see its "
            "award decisions"
        )
    return await uow.steering_groups.get(round_.area_code)


async def awards_of_round(
    uow: VouchersUnitOfWork, actor: Principal, round_id: uuid.UUID, status: AwardStatus | None, limit: int, offset: int
) -> tuple[list[AwardView], int]:
    """A page of the round's proposals; on those of an initiative the reader (co-)initiates, the counts and the
    outcome only — the page stays whole, so the list serves every member alike."""
    group = await _readable_group(uow, actor, round_id)
    awards, total = await uow.awards.of_round(round_id, status, limit, offset)
    return [await _view(uow, group, award, actor) for award in awards], total


async def award_of(uow: VouchersUnitOfWork, actor: Principal, round_id: uuid.UUID, award_id: uuid.UUID) -> AwardView:
    group = await _readable_group(uow, actor, round_id)
    award = await uow.awards.get(award_id)
    if award is None or award.round_id != round_id:
        raise NotFound(f"award proposal {award_id} in round {round_id}")
    return await _view(uow, group, award, actor)


async def _view(uow: VouchersUnitOfWork, group: SteeringGroup, award: Award, reader: Principal) -> AwardView:
    initiative = found(await uow.initiatives.get(award.initiative_id), f"initiative {award.initiative_id}")
    return AwardView(award, group.eligible_for(initiative), not sees_ballots(initiative, reader.subject))
