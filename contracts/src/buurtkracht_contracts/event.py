"""The base of every event model, and the CloudEvents 1.0 envelope that carries it.

An event is a fact, named in the past tense. Its model says what a consumer needs to act without
calling back; it never carries personal data beyond pseudonymous ids of people, each in a field
declared `PersonId` (see `personal`). The envelope follows CloudEvents 1.0 as the NL GOV profile
applies it: `source` is a URN, `type` is reverse-DNS with a version suffix, `id` a UUID, `subject`
the id of the aggregate the event is about.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

TYPE_PREFIX = "nl.buurtkracht"
SPECVERSION = "1.0"
DATACONTENTTYPE = "application/json"


def source_urn(oin: str, system: str) -> str:
    """The NL GOV `source` of a producing system: `urn:nld:oin:<OIN>:systeem:<system>`."""
    return f"urn:nld:oin:{oin}:systeem:{system}"


class Event(BaseModel):
    """A fact one service tells the others. Subclasses set the class variables.

    `event_type` is the full CloudEvents type, e.g. `nl.buurtkracht.initiatives.initiative-submitted.v1`;
    `aggregate_type` names the aggregate whose id `subject()` returns (the Kafka message key, so one
    aggregate's events stay in order on one partition).
    """

    # A reader ignores fields it does not know: a producer may add optional fields (a compatible change)
    # before every consumer has the newer contracts.
    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]
    aggregate_type: ClassVar[str]
    topic: ClassVar[str]

    def subject(self) -> str:
        raise NotImplementedError


class Envelope(BaseModel):
    """A CloudEvent as it travels: attributes plus the event model's JSON as `data`.

    `sequence` (the CloudEvents extension) is set by the outbox relay when it publishes the event, and read
    back from Kafka; an envelope not yet published has none, and its JSON then leaves it out."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    source: str
    type: str
    specversion: str = SPECVERSION
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    subject: str
    datacontenttype: str = DATACONTENTTYPE
    data: dict[str, Any]
    sequence: str | None = Field(default=None, exclude_if=lambda sequence: sequence is None)

    @classmethod
    def wrap(cls, event: Event, source: str, **attributes: Any) -> Envelope:
        return cls(
            source=source,
            type=event.event_type,
            subject=event.subject(),
            data=event.model_dump(mode="json"),
            **attributes,
        )
