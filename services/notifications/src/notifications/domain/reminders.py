"""Reminders, free of I/O: which moments have come for which reminder, given the deadlines this service learnt from
the events and a `now` the caller chooses (so a test never waits for days).

A reminder is one message about one subject (a round, an initiative, a claim) at one moment (the deadline it warns
of, or the start of the wait it is about): a person gets it at most once per (kind, subject, moment); the service
keeps that promise with a unique key (`reminders_sent`) written in the same transaction as the messages. A deadline
that moves makes a new moment, and so a new reminder: an initiative sent back for changes and in review again waits
anew.

- `reminder_round_closing`: a pledge round closes within `days` and the resident still holds vouchers in it;
- `reminder_support_ending`: an initiative's support period ends within `days` and it still needs supporters;
- `reminder_ballot_open`: an Equal Shares round closes within `days` and a resident known in its area has not cast
  a ballot;
- `reminder_review_waiting`: an initiative has waited at least `days` in review (officials of its area);
- `reminder_claim_waiting`: an expense claim has waited at least `days` for a decision (officials of the round's
  area);
- `reminder_report_due`: an initiative has been in progress for at least `days` and its initiators have not reported
  (the report is what completes an initiative: there is no step after completion).

A deadline reminder is due only before its deadline: one that was missed while the service was down is not sent
after the moment it warns of has passed.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from buurtkracht_contracts import initiatives as i


class Kind(StrEnum):
    ROUND_CLOSING = "reminder_round_closing"
    SUPPORT_ENDING = "reminder_support_ending"
    BALLOT_OPEN = "reminder_ballot_open"
    REVIEW_WAITING = "reminder_review_waiting"
    CLAIM_WAITING = "reminder_claim_waiting"
    REPORT_DUE = "reminder_report_due"


KINDS = tuple(kind.value for kind in Kind)


@dataclass(frozen=True)
class Policy:
    """Whether a kind of reminder is sent, and its number of days: before the deadline, or of waiting."""

    enabled: bool
    days: int


@dataclass(frozen=True)
class RoundKnown:
    round_id: uuid.UUID
    name: str
    area_code: str
    mechanism: str
    opens_at: datetime
    closes_at: datetime
    closed: bool


@dataclass(frozen=True)
class InitiativeKnown:
    initiative_id: uuid.UUID
    title: str
    area_code: str
    status: str
    status_since: datetime
    support_threshold: int | None
    support_deadline: datetime | None
    support_count: int


@dataclass(frozen=True)
class ClaimKnown:
    claim_id: uuid.UUID
    initiative_id: uuid.UUID
    area_code: str
    supplier: str
    amount_cents: int
    claimed_at: datetime


@dataclass(frozen=True)
class Due:
    """A reminder whose moment has come: about `subject`, for the moment `moment`, with what its message says."""

    kind: Kind
    subject: str
    moment: datetime
    params: dict[str, object]


def closing_soon(opens_at: datetime, closes_at: datetime, now: datetime, days: int) -> bool:
    """Open at `now`, and closing within `days`."""
    return opens_at <= now < closes_at and now >= closes_at - timedelta(days=days)


def waited(since: datetime, now: datetime, days: int) -> bool:
    """At least `days` have passed since `since`."""
    return now >= since + timedelta(days=days)


def days_left(deadline: datetime, now: datetime) -> int:
    """Whole days until `deadline`, counting a part of a day as a day (never 0 before the deadline)."""
    return max(1, math.ceil((deadline - now) / timedelta(days=1)))


def days_waited(since: datetime, now: datetime) -> int:
    return max(0, (now - since) // timedelta(days=1))


def rounds_closing(rounds: list[RoundKnown], now: datetime, policy: Policy) -> list[Due]:
    """Pledge rounds that close within the policy's days: their wallet holders with vouchers left are reminded."""
    return _closing(Kind.ROUND_CLOSING, "pledge", rounds, now, policy)


def ballots_closing(rounds: list[RoundKnown], now: datetime, policy: Policy) -> list[Due]:
    """Equal Shares rounds that close within the policy's days: residents who have not voted are reminded."""
    return _closing(Kind.BALLOT_OPEN, "equal_shares", rounds, now, policy)


def _closing(kind: Kind, mechanism: str, rounds: list[RoundKnown], now: datetime, policy: Policy) -> list[Due]:
    """The open rounds of `mechanism` that close within the policy's days, as `kind` reminders."""
    if not policy.enabled:
        return []
    return [
        Due(
            kind,
            str(r.round_id),
            r.closes_at,
            {
                "round_id": str(r.round_id),
                "round_name": r.name,
                "area_code": r.area_code,
                "closes_at": r.closes_at.isoformat(),
                "days_left": days_left(r.closes_at, now),
            },
        )
        for r in rounds
        if r.mechanism == mechanism and not r.closed and closing_soon(r.opens_at, r.closes_at, now, policy.days)
    ]


def support_ending(initiatives: list[InitiativeKnown], now: datetime, policy: Policy) -> list[Due]:
    """Initiatives gathering support whose period ends within the policy's days and that still need supporters."""
    if not policy.enabled:
        return []
    due = []
    for initiative in initiatives:
        deadline, threshold = initiative.support_deadline, initiative.support_threshold
        if initiative.status != "gathering_support" or deadline is None or threshold is None:
            continue
        needed = threshold - initiative.support_count
        if needed > 0 and closing_soon(initiative.status_since, deadline, now, policy.days):
            due.append(
                Due(
                    Kind.SUPPORT_ENDING,
                    str(initiative.initiative_id),
                    deadline,
                    {
                        "initiative_id": str(initiative.initiative_id),
                        "title": initiative.title,
                        "area_code": initiative.area_code,
                        "support_deadline": deadline.isoformat(),
                        "support_count": initiative.support_count,
                        "supporters_needed": needed,
                        "days_left": days_left(deadline, now),
                    },
                )
            )
    return due


def _waiting(initiative: InitiativeKnown, kind: Kind, now: datetime) -> Due:
    return Due(
        kind,
        str(initiative.initiative_id),
        initiative.status_since,
        {
            "initiative_id": str(initiative.initiative_id),
            "title": initiative.title,
            "area_code": initiative.area_code,
            "since": initiative.status_since.isoformat(),
            "days_waited": days_waited(initiative.status_since, now),
        },
    )


def reviews_waiting(initiatives: list[InitiativeKnown], now: datetime, policy: Policy) -> list[Due]:
    """Initiatives in review for at least the policy's days (since the threshold was reached or they were submitted
    with enough support), not yet approved, rejected or sent back for changes."""
    if not policy.enabled:
        return []
    return [
        _waiting(initiative, Kind.REVIEW_WAITING, now)
        for initiative in initiatives
        if initiative.status == "in_review" and waited(initiative.status_since, now, policy.days)
    ]


def reports_due(initiatives: list[InitiativeKnown], now: datetime, policy: Policy) -> list[Due]:
    """Initiatives in progress for at least the policy's days: their initiators have not reported yet."""
    if not policy.enabled:
        return []
    return [
        _waiting(initiative, Kind.REPORT_DUE, now)
        for initiative in initiatives
        if initiative.status == "in_progress" and waited(initiative.status_since, now, policy.days)
    ]


def claims_waiting(claims: list[ClaimKnown], now: datetime, policy: Policy, titles: dict[uuid.UUID, str]) -> list[Due]:
    """Undecided expense claims made at least the policy's days ago."""
    if not policy.enabled:
        return []
    return [
        Due(
            Kind.CLAIM_WAITING,
            str(claim.claim_id),
            claim.claimed_at,
            {
                "claim_id": str(claim.claim_id),
                "initiative_id": str(claim.initiative_id),
                "initiative_title": titles.get(claim.initiative_id, ""),
                "area_code": claim.area_code,
                "supplier": claim.supplier,
                "amount_cents": claim.amount_cents,
                "since": claim.claimed_at.isoformat(),
                "days_waited": days_waited(claim.claimed_at, now),
            },
        )
        for claim in claims
        if waited(claim.claimed_at, now, policy.days)
    ]


STATUS_AFTER: dict[type[i.InitiativeEvent], str] = {
    i.SupportThresholdReached: "in_review",
    i.InitiativeApproved: "approved",
    i.InitiativeRejected: "rejected",
    i.ChangesRequested: "changes_requested",
    i.InitiativeWithdrawn: "withdrawn",
    i.InitiativeExpired: "expired",
    i.InitiativeFunded: "funded",
    i.InitiativeStarted: "in_progress",
    i.InitiativeCompleted: "completed",
    i.InitiativeCancelled: "cancelled",
}


def status_after(event: i.InitiativeEvent) -> str | None:
    """The initiative's status once `event` happened; None for an event that does not move it (a support, a
    volunteer)."""
    if isinstance(event, i.InitiativeSubmitted):
        return event.status  # gathering support, or in review at once when it already has enough
    return STATUS_AFTER.get(type(event))
