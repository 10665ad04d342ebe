"""Ballots of Equal Shares rounds: a resident of the round's area approves any number of the approved initiatives of
that area, and may change their ballot until the round closes.

Invariants:
- one ballot per resident and round; a new one replaces it whole (an empty one withdraws every approval);
- a ballot names only initiatives that are approved and lie in the round's area, each at most once; anything else
  is refused and nothing changes;
- a ballot that changes records one BallotCast; casting the same approvals again changes nothing and records
  nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from buurtkracht_contracts.refusals import Conflict, InvalidInput

from .initiatives import Initiative
from .rounds import Round

MOST_APPROVALS = 500


@dataclass(frozen=True)
class Ballot:
    round_id: uuid.UUID
    resident_id: str
    initiative_ids: tuple[uuid.UUID, ...]
    cast_at: datetime


def cast(
    round_: Round,
    resident_id: str,
    lives_in_area: bool,
    approved: Sequence[uuid.UUID],
    initiatives: Mapping[uuid.UUID, Initiative],
    previous: Ballot | None,
    now: datetime,
) -> Ballot | None:
    """The resident's new ballot, or None when it approves what the one before did. `initiatives` are those named
    in the ballot, as far as the service knows them."""
    round_.ballot_castable(lives_in_area, now)
    if len(approved) > MOST_APPROVALS:
        raise InvalidInput(f"a ballot approves at most {MOST_APPROVALS} initiatives", "initiative_ids")
    if len(set(approved)) != len(approved):
        raise InvalidInput("a ballot approves each initiative at most once", "initiative_ids")
    for initiative_id in approved:
        initiative = initiatives.get(initiative_id)
        if initiative is None:
            raise InvalidInput(
                f"initiative {initiative_id} is not an approved initiative of {round_.area_code}", "initiative_ids"
            )
        try:
            initiative.require_pledgeable_in(round_)
        except Conflict as refused:
            raise InvalidInput(f"initiative {initiative_id}: {refused}", "initiative_ids") from None
    if previous is not None and set(previous.initiative_ids) == set(approved):
        return None
    ballot = Ballot(round_.id, resident_id, tuple(approved), now)
    round_.ballot_cast(resident_id, list(approved))
    return ballot
