"""Who hears of an event, as what kind of message: a pure table from event type to audiences.

An audience is resolved to residents by the service from this service's own data (initiators,
supporters and volunteers learned from earlier events, residents following an area, officials of an
area); the actor of an event never gets a message about their own action.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from buurtkracht_contracts import Event
from buurtkracht_contracts import initiatives as i
from buurtkracht_contracts import vouchers as v


class Audience(StrEnum):
    INITIATORS = "initiators"
    SUPPORTERS = "supporters"
    VOLUNTEERS = "volunteers"
    FOLLOWERS = "followers"  # residents following the event's area
    OFFICIALS = "officials"  # officials responsible for the event's area
    NAMED = "named"  # residents named in the event itself


@dataclass(frozen=True)
class Rule:
    kind: str
    audiences: tuple[Audience, ...]


A = Audience
INVOLVED = (A.INITIATORS, A.SUPPORTERS, A.VOLUNTEERS)

RULES: dict[type[Event], tuple[Rule, ...]] = {
    i.InitiativeSubmitted: (
        Rule("initiative_submitted", (A.INITIATORS,)),
        Rule("new_initiative_in_area", (A.FOLLOWERS,)),
    ),
    i.InitiativeSupported: (Rule("new_supporter", (A.INITIATORS,)),),
    i.InitiativeSupportWithdrawn: (Rule("support_withdrawn", (A.INITIATORS,)),),
    i.SupportThresholdReached: (
        Rule("threshold_reached", (A.INITIATORS,)),
        Rule("initiative_in_review", (A.OFFICIALS,)),
    ),
    i.InitiativeApproved: (Rule("initiative_approved", INVOLVED),),
    i.InitiativeRejected: (Rule("initiative_rejected", (A.INITIATORS,)),),
    i.ChangesRequested: (Rule("changes_requested", (A.INITIATORS,)),),
    i.InitiativeWithdrawn: (Rule("initiative_withdrawn", INVOLVED),),
    i.InitiativeExpired: (Rule("initiative_expired", (A.INITIATORS, A.SUPPORTERS)),),
    i.VolunteerJoined: (Rule("new_volunteer", (A.INITIATORS,)),),
    i.CoInitiatorJoined: (Rule("co_initiator_joined", (A.INITIATORS,)),),
    i.InitiativeFunded: (),  # the vouchers service's InitiativeAwarded tells the same people
    i.InitiativeStarted: (Rule("initiative_started", (A.SUPPORTERS, A.VOLUNTEERS)),),
    i.InitiativeCompleted: (Rule("initiative_completed", (*INVOLVED, A.FOLLOWERS)),),
    i.InitiativeCancelled: (Rule("initiative_cancelled", INVOLVED),),
    v.RoundOpened: (Rule("round_opened", (A.FOLLOWERS,)),),
    v.WalletsIssued: (Rule("wallet_issued", (A.NAMED,)),),
    v.PledgeMade: (Rule("pledge_confirmed", (A.NAMED,)),),
    v.PledgeWithdrawn: (Rule("pledge_returned", (A.NAMED,)),),
    v.InitiativeAwarded: (Rule("initiative_awarded", INVOLVED),),
    v.AwardDecided: (Rule("award_declined", (A.INITIATORS,)),),
    v.ExpenseClaimed: (Rule("expense_to_decide", (A.OFFICIALS,)),),
    v.ExpenseApproved: (Rule("expense_approved", (A.INITIATORS,)),),
    v.ExpenseDeclined: (Rule("expense_declined", (A.INITIATORS,)),),
    v.PayoutRequested: (),  # for the finance integration (webhooks)
    v.PayoutSettled: (Rule("payout_settled", (A.INITIATORS,)),),
    v.FundsReturned: (),
    v.RoundClosed: (Rule("round_results", (A.FOLLOWERS, A.OFFICIALS)),),
}

KINDS = sorted({rule.kind for rules in RULES.values() for rule in rules} | {"webhook_disabled"})


def rules_for(event: Event) -> tuple[Rule, ...]:
    if isinstance(event, v.AwardDecided) and event.awarded:
        return ()  # an award is told by InitiativeAwarded
    if isinstance(event, v.PledgeWithdrawn) and event.reason == "withdrawn_by_resident":
        return ()  # the resident did it themselves
    if isinstance(event, i.InitiativeSupportWithdrawn) and event.reason == "became_initiator":
        return ()  # they did not take their support back: CoInitiatorJoined tells that they joined
    return RULES.get(type(event), ())


def named_residents(event: Event) -> list[str]:
    if isinstance(event, v.WalletsIssued):
        return list(event.resident_ids)
    if isinstance(event, v.PledgeMade | v.PledgeWithdrawn):
        return [event.resident_id]
    return []


def actor(event: Event) -> str | None:
    """The resident whose action the event records; they are not told of it."""
    if isinstance(event, i.CoInitiatorJoined):
        return event.resident_id  # elsewhere `resident_id` names whom an event is about (a pledge's resident)
    for field in (
        "withdrawn_by",
        "started_by",
        "reported_by",
        "cancelled_by",
        "claimed_by",
        "supporter_id",
        "volunteer_id",
    ):
        if (value := getattr(event, field, None)) is not None:
            return value
    return None


def params(event: Event) -> dict[str, Any]:
    """What a message template may use: the event's own fields, JSON-ready (without lists of residents)."""
    return event.model_dump(mode="json", exclude={"resident_ids"})
