"""The steering group (regiegroep) of an area: the residents an official registered to award its committee
rounds' vouchers.

Invariants:
- a member is named once, by a pseudonymous id of 1 to 100 characters; at most one member chairs the group;
- registering replaces the whole list, and a change is told once (registering the same members with the same
  chair again, in any order, changes and tells nothing);
- only a registered member whose sign-in carries the steering_group role proposes or votes, and never on an
  initiative they (co-)initiate: such a member is not eligible for that initiative's awards at all;
- nobody sees who voted how on the awards of an initiative they (co-)initiate — only how many votes of each kind
  count and the outcome — so no member is answerable to the initiators for their vote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from buurtkracht_contracts import vouchers as events
from buurtkracht_contracts.event import Event
from buurtkracht_contracts.refusals import InvalidInput, NotAllowed

from .initiatives import Initiative

MAX_MEMBERS = 50


@dataclass(frozen=True)
class Member:
    member_id: str
    chair: bool = False


def require_not_own_case(initiative: Initiative, member_id: str) -> None:
    """Nobody decides on an initiative they (co-)initiate."""
    if member_id in initiative.initiators:
        raise NotAllowed(
            f"you (co-)initiate initiative {initiative.id}: nobody votes on an award for their own initiative"
        )


def sees_ballots(initiative: Initiative, reader: str) -> bool:
    """Whether `reader` may see who voted how on an award for `initiative`: not when they (co-)initiate it."""
    return reader not in initiative.initiators


@dataclass
class SteeringGroup:
    area_code: str
    members: list[Member] = field(default_factory=list)
    changed_by: str | None = None
    changed_at: datetime | None = None
    events: list[Event] = field(default_factory=list, repr=False, compare=False)

    @property
    def member_ids(self) -> list[str]:
        return [member.member_id for member in self.members]

    @property
    def chair_id(self) -> str | None:
        return next((member.member_id for member in self.members if member.chair), None)

    def is_member(self, subject: str) -> bool:
        return subject in self.member_ids

    def replace(self, members: list[Member], changed_by: str, now: datetime) -> bool:
        """Register `members` as the whole group; returns whether anything changed."""
        ids = [member.member_id for member in members]
        if any(not member_id or len(member_id) > 100 for member_id in ids):
            raise InvalidInput("a member id is 1 to 100 characters", "members")
        if len(set(ids)) != len(ids):
            raise InvalidInput("each member is named once", "members")
        if len(ids) > MAX_MEMBERS:
            raise InvalidInput(f"a steering group has at most {MAX_MEMBERS} members", "members")
        if sum(member.chair for member in members) > 1:
            raise InvalidInput("a steering group has at most one chair", "members")
        if set(members) == set(self.members):
            return False
        before = set(self.member_ids)
        self.members, self.changed_by, self.changed_at = list(members), changed_by, now
        self.events.append(
            events.SteeringGroupChanged(
                area_code=self.area_code,
                member_ids=ids,
                chair_id=self.chair_id,
                joined_member_ids=[member_id for member_id in ids if member_id not in before],
                left_member_ids=sorted(before - set(ids)),
                changed_by=changed_by,
            )
        )
        return True

    def require_voter(self, subject: str, holds_role: bool) -> None:
        """Only a registered member, signed in with the steering_group role, proposes or votes."""
        if not holds_role:
            raise NotAllowed(
                f"only members of the steering group of {self.area_code} propose and vote on awards, signed in "
                "with the steering_group role; your sign-in does not carry it"
            )
        if not self.is_member(subject):
            raise NotAllowed(
                f"you are not a registered member of the steering group of {self.area_code}: an official "
                "responsible for the area registers its members"
            )

    def eligible_for(self, initiative: Initiative) -> list[str]:
        """The members who may vote on awards for `initiative`: all but its initiators."""
        return [member_id for member_id in self.member_ids if member_id not in initiative.initiators]
