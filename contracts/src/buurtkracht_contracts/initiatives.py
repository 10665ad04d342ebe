"""Events of the initiatives service: one per transition of an initiative, and per support, volunteer or
co-initiator change; and one per area of its registry that is new or changed (`AreaRegistered`).

Every event carries what a consumer needs to act without calling back: the initiative, its area,
its title and its initiators (pseudonymous resident ids, owner first, then the co-initiators who accepted
their invitation; an invited resident is not an initiator until `CoInitiatorJoined`). No names, no contact
data.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from .areas import AreaCode
from .event import TYPE_PREFIX, Event
from .money import Cents
from .personal import PersonId
from .registry import register
from .topics import INITIATIVES_EVENTS

ResidentId = PersonId  # a resident's (or an official's) pseudonymous id: see `personal`
Category = Literal["green", "play", "safety", "social", "culture", "sport", "sustainability", "other"]
Status = Literal[
    "draft",
    "gathering_support",
    "in_review",
    "changes_requested",
    "approved",
    "rejected",
    "withdrawn",
    "expired",
    "funded",
    "in_progress",
    "completed",
    "cancelled",
]


def _type(name: str, version: int = 1) -> str:
    return f"{TYPE_PREFIX}.initiatives.{name}.v{version}"


class InitiativeEvent(Event):
    aggregate_type: ClassVar[str] = "initiative"
    topic: ClassVar[str] = INITIATIVES_EVENTS

    initiative_id: uuid.UUID
    area_code: str = Field(description="CBS code of the initiative's area, e.g. BU03630001")
    title: str
    initiators: list[ResidentId] = Field(min_length=1, description="Pseudonymous ids, owner first")

    def subject(self) -> str:
        return str(self.initiative_id)


class PlannedBudgetLine(BaseModel):
    """One line of the budget an initiative asks for, as its initiators wrote it."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    description: str
    amount_cents: Cents


class BudgetLineSpending(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    description: str
    budgeted_cents: Cents
    spent_cents: Cents


@register
class InitiativeSubmitted(InitiativeEvent):
    event_type: ClassVar[str] = _type("initiative-submitted")
    category: Category
    summary: str
    requested_amount_cents: Cents
    status: Literal["gathering_support", "in_review"]
    support_threshold: int = Field(ge=0)
    support_deadline: datetime | None
    budget_lines: list[PlannedBudgetLine] = Field(
        default_factory=list,
        description="The budget asked for, line by line, as submitted (they add up to requested_amount_cents); "
        "absent in events recorded before the lines were given",
    )


@register
class InitiativeSupported(InitiativeEvent):
    event_type: ClassVar[str] = _type("initiative-supported")
    supporter_id: ResidentId
    support_count: int = Field(ge=1)


@register
class InitiativeSupportWithdrawn(InitiativeEvent):
    """The resident no longer supports the initiative: they took their support back, or they became one of its
    initiators (who never count as supporters). `support_count` is the count after the change."""

    event_type: ClassVar[str] = _type("initiative-support-withdrawn")
    supporter_id: ResidentId
    support_count: int = Field(ge=0)
    reason: Literal["withdrawn_by_supporter", "became_initiator"] | None = Field(
        None,
        description="Why the support ended: the supporter took it back, or the supporter joined the initiative "
        "as a co-initiator; absent in events recorded before the reason was given (taken back)",
    )


@register
class SupportThresholdReached(InitiativeEvent):
    event_type: ClassVar[str] = _type("support-threshold-reached")
    support_count: int = Field(ge=0)


@register
class InitiativeApproved(InitiativeEvent):
    event_type: ClassVar[str] = _type("initiative-approved")
    official_id: ResidentId
    requested_amount_cents: Cents
    approved_amount_cents: Cents


@register
class InitiativeRejected(InitiativeEvent):
    event_type: ClassVar[str] = _type("initiative-rejected")
    official_id: ResidentId
    reason: str


@register
class ChangesRequested(InitiativeEvent):
    event_type: ClassVar[str] = _type("changes-requested")
    official_id: ResidentId
    comment: str


@register
class InitiativeWithdrawn(InitiativeEvent):
    event_type: ClassVar[str] = _type("initiative-withdrawn")
    withdrawn_by: ResidentId
    previous_status: Status


@register
class InitiativeExpired(InitiativeEvent):
    event_type: ClassVar[str] = _type("initiative-expired")
    reason: Literal["support_deadline_missed", "round_closed_without_award"]
    previous_status: Status


@register
class VolunteerJoined(InitiativeEvent):
    event_type: ClassVar[str] = _type("volunteer-joined")
    volunteer_id: ResidentId
    volunteer_count: int = Field(ge=1)


@register
class CoInitiatorJoined(InitiativeEvent):
    """An invited resident accepted and co-initiates the initiative; `initiators` already includes them."""

    event_type: ClassVar[str] = _type("co-initiator-joined")
    resident_id: ResidentId = Field(description="The resident who joined as a co-initiator")


@register
class InitiativeFunded(InitiativeEvent):
    event_type: ClassVar[str] = _type("initiative-funded")
    round_id: uuid.UUID
    awarded_amount_cents: Cents


@register
class InitiativeStarted(InitiativeEvent):
    event_type: ClassVar[str] = _type("initiative-started")
    started_by: ResidentId


@register
class InitiativeCompleted(InitiativeEvent):
    event_type: ClassVar[str] = _type("initiative-completed")
    reported_by: ResidentId
    what_was_done: str
    spent_amount_cents: Cents
    spending: list[BudgetLineSpending]


@register
class InitiativeCancelled(InitiativeEvent):
    event_type: ClassVar[str] = _type("initiative-cancelled")
    cancelled_by: ResidentId
    reason: str
    previous_status: Literal["funded", "in_progress"]


AreaKind = Literal["gemeente", "wijk", "buurt"]


@register
class AreaRegistered(Event):
    """An area of the registry as it now reads, first registered or changed (the municipality imported the CBS
    "wijk- en buurtkaart" again): a consumer keeps the newest of each code. Keyed by the area's code, so the
    changes of one area stay in order."""

    event_type: ClassVar[str] = _type("area-registered")
    aggregate_type: ClassVar[str] = "area"
    topic: ClassVar[str] = INITIATIVES_EVENTS

    code: AreaCode
    name: str = Field(min_length=1, description="The name CBS gives the area, e.g. Burgwallen-Oude Zijde")
    kind: AreaKind
    parent_code: AreaCode | None = Field(
        description="The area it lies in: a buurt's wijk, a wijk's municipality; none for a municipality"
    )
    outline: dict[str, Any] | None = Field(
        None,
        description="The area's outline as a GeoJSON geometry, in the coordinates of the imported file, when it "
        "carried one",
    )

    def subject(self) -> str:
        return self.code


# -- asking neighbours: help requests and the personal asks they lead to ------------------------------------------


@register
class HelpRequested(InitiativeEvent):
    """The initiators ask for help: `people_needed` neighbours whose offers share a tag with `tags`, each for about
    `hours_per_person` hours (`needed_at`: from when, if they said). The asking that follows names nobody here."""

    event_type: ClassVar[str] = _type("help-requested")
    help_request_id: uuid.UUID
    tags: list[str] = Field(min_length=1)
    description: str
    hours_per_person: int = Field(ge=1)
    people_needed: int = Field(ge=1)
    needed_at: datetime | None = None
    requested_by: ResidentId


@register
class NeighbourAsked(InitiativeEvent):
    """One resident whose offer fits a help request is asked personally (the notifications service brings them the
    ask, with its two answers). Only the asked resident and the services learn who was asked; the initiators never
    do."""

    event_type: ClassVar[str] = _type("neighbour-asked")
    help_request_id: uuid.UUID
    ask_id: uuid.UUID
    resident_id: ResidentId = Field(description="The resident asked")
    tags: list[str] = Field(min_length=1)
    description: str
    hours_per_person: int = Field(ge=1)
    needed_at: datetime | None = None


@register
class HelpAccepted(InitiativeEvent):
    """The asked resident said yes: they volunteer for the initiative (a `VolunteerJoined` follows unless they
    already did); `accepted_count` yeses so far."""

    event_type: ClassVar[str] = _type("help-accepted")
    help_request_id: uuid.UUID
    ask_id: uuid.UUID
    resident_id: ResidentId = Field(description="The resident who said yes")
    accepted_count: int = Field(ge=1)


@register
class HelpDeclined(InitiativeEvent):
    """The asked resident said "not this time"; they are asked later than others who fit, for a while."""

    event_type: ClassVar[str] = _type("help-declined")
    help_request_id: uuid.UUID
    ask_id: uuid.UUID
    resident_id: ResidentId = Field(description="The resident who said no")


@register
class HelpRequestFilled(InitiativeEvent):
    """Enough neighbours said yes: the request is closed and nobody is asked for it any more; unanswered asks of it
    lapse."""

    event_type: ClassVar[str] = _type("help-request-filled")
    help_request_id: uuid.UUID
    people_needed: int = Field(ge=1)
    accepted_count: int = Field(ge=1)
