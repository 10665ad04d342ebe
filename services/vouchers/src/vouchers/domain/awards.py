"""Committee awards: the steering group of a round's area decides, member by member, whether an approved
initiative gets vouchers.

A member proposes an award (their own vote is `for`); the eligible members — the registered members of the
round's area but the initiative's initiators — each cast their own vote, and may change it while the proposal is
open. Invariants:
- only the votes of members eligible when it is counted count; each member counts once;
- it is awarded as soon as the quorum of such votes is reached and `for` outnumbers `against`; it is not
  awarded once every eligible member has voted and it is not awarded; until then it stays open;
- a decided proposal takes no more votes, and is recorded with who voted how; an awarded one moves its amount,
  positive and at most the approved amount, from the round's pool to the initiative's budget;
- at most one proposal per initiative is open in a round; a proposal whose round closed or whose initiative is
  no longer open for an award lapses (see the service).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal, get_args

from buurtkracht_contracts import vouchers as events
from buurtkracht_contracts.event import Event
from buurtkracht_contracts.refusals import Conflict, InvalidInput

from .initiatives import Initiative
from .ledger import Entry
from .rounds import Round
from .steering import SteeringGroup, require_not_own_case

VoteCast = Literal["for", "against", "abstain"]
VOTES: tuple[str, ...] = get_args(VoteCast)


class AwardStatus(StrEnum):
    OPEN = "open"
    AWARDED = "awarded"
    NOT_AWARDED = "not_awarded"
    LAPSED = "lapsed"


@dataclass(frozen=True)
class Ballot:
    """One member's vote on one proposal."""

    member_id: str
    vote: VoteCast
    cast_at: datetime


def tally(votes: Mapping[str, str], eligible: Collection[str], quorum: int) -> bool | None:
    """Awarded (True), not awarded (False) or still open (None), counting the votes of `eligible` members only."""
    counted = [vote for member, vote in votes.items() if member in eligible]
    in_favour, against = counted.count("for"), counted.count("against")
    if len(counted) >= quorum and in_favour > against:
        return True
    if all(member in votes for member in eligible):
        return False
    return None


@dataclass
class Award:
    """A proposal to award an initiative in a committee round, and its decision."""

    id: uuid.UUID
    round_id: uuid.UUID
    initiative_id: uuid.UUID
    amount_cents: int
    proposed_by: str
    quorum: int
    status: AwardStatus
    proposed_at: datetime
    ballots: dict[str, Ballot] = field(default_factory=dict)  # by member, in the order cast
    decided_at: datetime | None = None
    events: list[Event] = field(default_factory=list, repr=False, compare=False)

    @property
    def awarded(self) -> bool | None:
        """Whether it was awarded; None while open or when it lapsed."""
        return {AwardStatus.AWARDED: True, AwardStatus.NOT_AWARDED: False}.get(self.status)

    @classmethod
    def propose(
        cls,
        round_: Round,
        initiative: Initiative,
        group: SteeringGroup,
        proposer: str,
        holds_role: bool,
        amount_cents: int,
        open_already: bool,
        now: datetime,
    ) -> tuple[Award, Entry | None]:
        """A member's proposal, with their vote `for`; decided at once when that vote makes the decision (a quorum
        of one), and then the entry that moves the award."""
        group.require_voter(proposer, holds_role)
        require_not_own_case(initiative, proposer)
        initiative.require_pledgeable_in(round_)
        if open_already:
            raise Conflict("a proposal to award this initiative is open in this round already: vote on it", "open")
        if not 0 < amount_cents <= initiative.approved_amount_cents:
            raise InvalidInput(
                f"the award must be positive and at most the approved {initiative.approved_amount_cents} cents",
                "amount_cents",
            )
        award = cls(
            uuid.uuid4(),
            round_.id,
            initiative.id,
            amount_cents,
            proposer,
            round_.committee_quorum or 1,
            AwardStatus.OPEN,
            now,
        )
        award.events.append(
            events.AwardProposed(
                round_id=round_.id,
                area_code=round_.area_code,
                initiative_id=initiative.id,
                decision_id=award.id,
                amount_cents=amount_cents,
                proposed_by=proposer,
                quorum=award.quorum,
                eligible_member_ids=group.eligible_for(initiative),
            )
        )
        return award, award.cast(round_, initiative, group, proposer, holds_role, "for", now)

    def cast(
        self,
        round_: Round,
        initiative: Initiative,
        group: SteeringGroup,
        member: str,
        holds_role: bool,
        vote: str,
        now: datetime,
    ) -> Entry | None:
        """`member` votes (again); when that decides the proposal and awards it, the entry that moves the award."""
        group.require_voter(member, holds_role)
        require_not_own_case(initiative, member)
        if self.status is AwardStatus.LAPSED:
            raise Conflict("the proposal lapsed: its round closed or its initiative is no longer open for it", "lapsed")
        if self.status is not AwardStatus.OPEN:
            raise Conflict(f"the proposal was decided ({self.status.value}): it takes no more votes", self.status.value)
        round_.require_open(now, "vote on an award")
        if vote not in VOTES:
            raise InvalidInput("a vote is for, against or abstain", "vote")
        previous = self.ballots.get(member)
        if previous is None or previous.vote != vote:
            self.ballots.pop(member, None)
            self.ballots[member] = Ballot(member, vote, now)  # type: ignore[arg-type]
        eligible = group.eligible_for(initiative)
        outcome = tally({m: b.vote for m, b in self.ballots.items()}, eligible, self.quorum)
        if outcome is None:
            return None
        return self._decide(round_, initiative, outcome, eligible, now)

    def counted(self, eligible: Collection[str]) -> list[Ballot]:
        return [ballot for ballot in self.ballots.values() if ballot.member_id in eligible]

    def counts(self, eligible: Collection[str]) -> dict[str, int]:
        """How many of the votes that count (those of `eligible` members) are for, against and abstain."""
        cast = [ballot.vote for ballot in self.counted(eligible)]
        return {vote: cast.count(vote) for vote in VOTES}

    def _decide(
        self, round_: Round, initiative: Initiative, awarded: bool, eligible: list[str], now: datetime
    ) -> Entry | None:
        entry = initiative.award_by_committee(round_, self.id, self.amount_cents) if awarded else None
        self.status = AwardStatus.AWARDED if awarded else AwardStatus.NOT_AWARDED
        self.decided_at = now
        self.events.append(
            events.AwardDecided(
                round_id=round_.id,
                area_code=round_.area_code,
                initiative_id=initiative.id,
                decision_id=self.id,
                amount_cents=self.amount_cents,
                awarded=awarded,
                votes=[events.Vote(member_id=b.member_id, vote=b.vote) for b in self.counted(eligible)],
                quorum=self.quorum,
                proposed_by=self.proposed_by,
            )
        )
        return entry
