"""Events of the vouchers service: budget rounds, wallets, pledges, awards, spending and the ledger.

Amounts are integer euro cents. Residents appear only as pseudonymous ids.
"""

from __future__ import annotations

import uuid
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from .event import TYPE_PREFIX, Event
from .money import Cents
from .registry import register
from .topics import VOUCHERS_EVENTS

Mechanism = Literal["committee", "pledge"]


def _type(name: str, version: int = 1) -> str:
    return f"{TYPE_PREFIX}.vouchers.{name}.v{version}"


class RoundEvent(Event):
    aggregate_type: ClassVar[str] = "round"
    topic: ClassVar[str] = VOUCHERS_EVENTS

    round_id: uuid.UUID
    area_code: str

    def subject(self) -> str:
        return str(self.round_id)


@register
class InitiativeAwarded(RoundEvent):
    """The round awarded the initiative its budget: by pledges reaching the approved amount, or by the committee."""

    event_type: ClassVar[str] = _type("initiative-awarded")
    initiative_id: uuid.UUID
    mechanism: Mechanism
    awarded_amount_cents: Cents


class RoundSummary(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    total_budget_cents: Cents
    awarded_cents: Cents
    returned_to_pool_cents: Cents
    awarded_initiative_ids: list[uuid.UUID]
    unawarded_initiative_ids: list[uuid.UUID] = Field(
        description="Approved initiatives of the round's area that the round closed without awarding"
    )


@register
class RoundClosed(RoundEvent):
    event_type: ClassVar[str] = _type("round-closed")
    name: str
    mechanism: Mechanism
    summary: RoundSummary
