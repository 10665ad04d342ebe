"""Committee awards: the steering group of the area decides whether an approved initiative gets vouchers.

Invariants: a decision counts only with a quorum of distinct members, among whom the member recording it; it
awards when `for` outnumbers `against`, a positive amount of at most the approved amount; every decision is
recorded with who voted how, awarded or not.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

from buurtkracht_contracts import vouchers as events
from buurtkracht_contracts.event import Event
from buurtkracht_contracts.refusals import Conflict, InvalidInput, NotAllowed

from .initiatives import Initiative
from .rounds import Round

VoteCast = Literal["for", "against", "abstain"]
Vote = tuple[str, str]  # (member id, "for" | "against" | "abstain")


@dataclass(frozen=True)
class AwardOutcome:
    awarded: bool
    quorum: int


def decide_committee_award(votes: list[Vote], quorum: int, recorder_id: str) -> AwardOutcome:
    """A decision counts when at least `quorum` distinct members voted; it awards when `for` outnumbers `against`."""
    members = [member for member, _ in votes]
    if len(set(members)) != len(members):
        raise InvalidInput("each member votes once", "votes")
    if recorder_id not in members:
        raise NotAllowed("the member recording the decision must be among those who voted")
    if len(members) < quorum:
        raise Conflict(f"{len(members)} votes do not make the quorum of {quorum}", "no_quorum")
    in_favour = sum(1 for _, vote in votes if vote == "for")
    against = sum(1 for _, vote in votes if vote == "against")
    return AwardOutcome(in_favour > against, quorum)


@dataclass
class Award:
    """One decision of the steering group on one initiative."""

    id: uuid.UUID
    round_id: uuid.UUID
    initiative_id: uuid.UUID
    amount_cents: int
    awarded: bool
    quorum: int
    votes: list[Vote]
    recorded_by: str
    events: list[Event] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def decide(
        cls, round_: Round, initiative: Initiative, amount_cents: int, votes: list[Vote], recorder_id: str
    ) -> Award:
        initiative.require_pledgeable_in(round_)
        if not 0 < amount_cents <= initiative.approved_amount_cents:
            raise InvalidInput(
                f"the award must be positive and at most the approved {initiative.approved_amount_cents} cents",
                "amount_cents",
            )
        outcome = decide_committee_award(votes, round_.committee_quorum or 1, recorder_id)
        award = cls(
            uuid.uuid4(),
            round_.id,
            initiative.id,
            amount_cents,
            outcome.awarded,
            outcome.quorum,
            list(votes),
            recorder_id,
        )
        award.events.append(
            events.AwardDecided(
                round_id=round_.id,
                area_code=round_.area_code,
                initiative_id=initiative.id,
                decision_id=award.id,
                amount_cents=amount_cents,
                awarded=outcome.awarded,
                votes=[events.Vote(member_id=member, vote=vote) for member, vote in votes],
                quorum=outcome.quorum,
            )
        )
        return award
