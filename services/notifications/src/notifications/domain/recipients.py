"""Who hears of an event, as what kind of message: a pure table from event type to audiences.

An audience is resolved to residents by the service from this service's own data (initiators,
supporters and volunteers learned from earlier events, residents following an area, officials of an
area), or from the event itself (its named residents: a wallet's holders, a steering group's new or former
members, the members who may vote on a proposal); the actor of an event never gets a message about their own
action. What a message keeps of its event (`params`) is what its templates use: never a person.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from buurtkracht_contracts import Event
from buurtkracht_contracts import initiatives as i
from buurtkracht_contracts import vouchers as v
from buurtkracht_contracts.personal import names_people

from .messages import template_fields
from .reminders import KINDS as REMINDER_KINDS


class Audience(StrEnum):
    INITIATORS = "initiators"
    SUPPORTERS = "supporters"
    VOLUNTEERS = "volunteers"
    FOLLOWERS = "followers"  # residents following the event's area
    OFFICIALS = "officials"  # officials responsible for the event's area
    NAMED = "named"  # residents the event itself names for the rule's kind (see `named_residents`)


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
    i.AreaRegistered: (),  # names areas in messages; tells nobody
    i.HelpRequested: (),  # the initiators made it; the asks that follow reach the neighbours
    i.NeighbourAsked: (Rule("help_asked", (A.NAMED,)),),  # the personal ask, to the asked resident only
    i.HelpAccepted: (),  # the VolunteerJoined of the yes tells the initiators
    i.HelpDeclined: (),  # nobody is told who said no
    i.HelpRequestFilled: (Rule("help_request_filled", (A.INITIATORS,)),),
    v.RoundOpened: (Rule("round_opened", (A.FOLLOWERS,)),),
    v.WalletsIssued: (Rule("wallet_issued", (A.NAMED,)),),
    v.PledgeMade: (Rule("pledge_confirmed", (A.NAMED,)),),
    v.PledgeWithdrawn: (Rule("pledge_returned", (A.NAMED,)),),
    v.InitiativeAwarded: (Rule("initiative_awarded", INVOLVED),),
    v.SteeringGroupChanged: (
        Rule("steering_group_chair", (A.NAMED,)),
        Rule("steering_group_joined", (A.NAMED,)),
        Rule("steering_group_left", (A.NAMED,)),
    ),
    v.AwardProposed: (Rule("award_to_vote", (A.NAMED,)),),
    v.AwardDecided: (Rule("award_declined", (A.INITIATORS,)),),
    v.BallotCast: (),  # the resident sees their ballot on the round's page; reminders use it
    v.ExpenseClaimed: (Rule("expense_to_decide", (A.OFFICIALS,)),),
    v.ExpenseApproved: (Rule("expense_approved", (A.INITIATORS,)),),
    v.ExpenseDeclined: (Rule("expense_declined", (A.INITIATORS,)),),
    v.PayoutRequested: (),  # for the finance integration (webhooks)
    v.PayoutSettled: (Rule("payout_settled", (A.INITIATORS,)),),
    v.PayoutBatchClosed: (),  # for the finance integration (webhooks)
    v.PayoutReturned: (Rule("payout_returned", (A.INITIATORS,)),),
    v.PayoutCancelled: (Rule("payout_cancelled", (A.INITIATORS,)),),
    v.FundsReturned: (),
    v.RoundClosed: (Rule("round_results", (A.FOLLOWERS, A.OFFICIALS)),),
}

KINDS = sorted({rule.kind for rules in RULES.values() for rule in rules} | {"webhook_disabled", *REMINDER_KINDS})


def rules_for(event: Event) -> tuple[Rule, ...]:
    if isinstance(event, v.AwardDecided) and event.awarded:
        return ()  # an award is told by InitiativeAwarded
    if isinstance(event, v.AwardProposed) and event.quorum <= 1:
        return ()  # the proposer's own vote decided it at once: nobody is left to vote (AwardDecided follows)
    if isinstance(event, v.PledgeWithdrawn) and event.reason == "withdrawn_by_resident":
        return ()  # the resident did it themselves
    if isinstance(event, i.InitiativeSupportWithdrawn) and event.reason == "became_initiator":
        return ()  # they did not take their support back: CoInitiatorJoined tells that they joined
    return RULES.get(type(event), ())


def named_residents(event: Event, kind: str) -> list[str]:
    """The residents the event itself names, for a message of `kind`."""
    if isinstance(event, v.WalletsIssued):
        return list(event.resident_ids)
    if isinstance(event, v.PledgeMade | v.PledgeWithdrawn):
        return [event.resident_id]
    if isinstance(event, v.SteeringGroupChanged):
        joined = list(event.joined_member_ids)
        if kind == "steering_group_chair":
            return [member for member in joined if member == event.chair_id]
        if kind == "steering_group_joined":
            return [member for member in joined if member != event.chair_id]
        if kind == "steering_group_left":
            return list(event.left_member_ids)
        return []  # a member who stays (also one who now chairs) is not told
    if isinstance(event, v.AwardProposed):
        return list(event.eligible_member_ids)
    if isinstance(event, i.NeighbourAsked):
        return [event.resident_id]  # the members who may vote on it; the proposer is the actor
    return []


def actor(event: Event) -> str | None:
    """The person (a resident, or an official) whose action the event records; they are not told of it."""
    if isinstance(event, i.CoInitiatorJoined):
        return event.resident_id  # elsewhere `resident_id` names whom an event is about (a pledge's resident)
    if isinstance(event, v.AwardProposed):
        return event.proposed_by  # an AwardDecided's proposer did not decide it: the group's votes did
    for field in (
        "withdrawn_by",
        "started_by",
        "reported_by",
        "cancelled_by",
        "claimed_by",
        "changed_by",
        "supporter_id",
        "volunteer_id",
    ):
        if (value := getattr(event, field, None)) is not None:
            return value
    return None


# What a stored message links to besides what it says, so an app can open it: never a person.
LINKS = frozenset({"initiative_id", "round_id"})


def params(event: Event, kind: str, **known: Any) -> dict[str, Any]:
    """What a message of `kind` about `event` keeps (the inbox and the notifications API answer it, the email is
    rendered from it): the values its templates, its page and its layout use (what it is about: the initiative's
    title, the round's name, the area) and the ids it links to, taken from the event's fields, the counts of its
    votes (never who voted how) and what the service `known`s (an initiative's title, a round's name). A field that
    names a person is never kept, whatever a template asks: templates never name people."""
    people = {name for name in type(event).model_fields if names_people(type(event), name)}
    values = event.model_dump(mode="json", exclude=people)
    votes = getattr(event, "votes", None)
    if votes is not None:
        values["votes_for"] = sum(1 for v in votes if v.vote == "for")
        values["votes_against"] = sum(1 for v in votes if v.vote == "against")
        values["votes_cast"] = len(votes)
    values |= known
    wanted = template_fields(kind) | LINKS
    return {name: value for name, value in values.items() if name in wanted and name not in people}
