"""Which fields name a person is declared once, at the field (`PersonId`), and the declaration stays complete."""

from __future__ import annotations

import uuid
from typing import ClassVar

import pytest
from pydantic import BaseModel, ConfigDict

from buurtkracht_contracts import Envelope, Event, event_types
from buurtkracht_contracts import initiatives as i
from buurtkracht_contracts import notifications as n
from buurtkracht_contracts import vouchers as v
from buurtkracht_contracts.personal import PersonId, names_people, people_in, personal_fields, pseudonymised, undeclared
from buurtkracht_contracts.schemas import schema_of

pytestmark = pytest.mark.unit

MODELS = sorted(
    (model for model in event_types().values() if model.__module__.startswith("buurtkracht_contracts.")),
    key=lambda model: model.event_type,
)  # the contracts' own events, not those a test module registers for itself


@pytest.mark.parametrize("model", MODELS, ids=[model.__name__ for model in MODELS])
def test_every_field_named_like_a_persons_id_is_declared_a_person(model):
    assert undeclared(model) == [], f"declare {model.__name__}'s fields that name a person as PersonId"


class Helper(BaseModel):
    model_config = ConfigDict(frozen=True)
    recipient_id: str
    task: str


class NewlyAdded(Event):
    event_type: ClassVar[str] = "nl.buurtkracht.tests.newly-added.v1"
    aggregate_type: ClassVar[str] = "test"
    topic: ClassVar[str] = "tests.events"

    initiative_id: uuid.UUID
    owner_id: str
    co_initiator_ids: list[str]
    actor_id: str | None = None
    approved_by: str
    helpers: list[Helper]
    supporter_count: int
    payout_reference: str


def test_a_new_string_field_named_like_a_persons_id_is_found_until_it_is_declared():
    assert undeclared(NewlyAdded) == [
        "owner_id",
        "co_initiator_ids",
        "actor_id",
        "approved_by",
        "helpers.recipient_id",
    ], "ids of other things (a UUID, a count, a reference) are not people"

    class Declared(BaseModel):
        owner_id: PersonId
        co_initiator_ids: list[PersonId]
        actor_id: PersonId | None = None

    assert undeclared(Declared) == []
    assert personal_fields(Declared) == ["owner_id", "co_initiator_ids[]", "actor_id"]


def test_people_in_nested_models_and_lists_are_declared():
    assert personal_fields(v.AwardDecided) == ["votes[].member_id", "proposed_by"]
    assert personal_fields(i.InitiativeSupported) == ["initiators[]", "supporter_id"]
    assert personal_fields(v.RoundClosed) == []
    assert names_people(v.AwardDecided, "votes") and not names_people(v.AwardDecided, "quorum")
    assert personal_fields(n.ResidentForgetRequested) == ["resident_id"]


def test_the_published_schema_marks_each_field_that_names_a_person():
    pledge = schema_of(v.PledgeMade.event_type)
    assert pledge["properties"]["resident_id"]["x-personal"] is True
    assert "x-personal" not in pledge["properties"]["initiative_id"]
    decided = schema_of(v.AwardDecided.event_type)
    assert decided["$defs"]["Vote"]["properties"]["member_id"]["x-personal"] is True
    issued = schema_of(v.WalletsIssued.event_type)
    assert issued["properties"]["resident_ids"]["items"]["x-personal"] is True


def decided() -> v.AwardDecided:
    return v.AwardDecided(
        round_id=uuid.uuid4(),
        area_code="BU03630001",
        initiative_id=uuid.uuid4(),
        decision_id=uuid.uuid4(),
        amount_cents=50_000,
        awarded=True,
        votes=[v.Vote(member_id="m-1", vote="for"), v.Vote(member_id="m-2", vote="against")],
        quorum=2,
        proposed_by="m-1",
    )


def test_pseudonymised_data_replaces_every_person_and_leaves_out_what_the_contracts_do_not_know():
    data = Envelope.wrap(decided(), "urn:test").data | {"added_by_a_newer_producer": "m-1"}
    masked = pseudonymised(data, v.AwardDecided, lambda person: f"p({person})")
    assert masked["votes"] == [{"member_id": "p(m-1)", "vote": "for"}, {"member_id": "p(m-2)", "vote": "against"}]
    assert masked["proposed_by"] == "p(m-1)"
    assert "added_by_a_newer_producer" not in masked
    assert masked["amount_cents"] == 50_000 and masked["round_id"] == data["round_id"]
    assert people_in(data, v.AwardDecided) == {"m-1", "m-2"}


def test_pseudonymised_data_need_not_be_valid():
    masked = pseudonymised({"resident_id": "r-1", "amount_cents": 100}, v.PledgeMade, str.upper)
    assert masked == {"resident_id": "R-1", "amount_cents": 100}
    assert pseudonymised({"votes": None, "initiators": "r-1"}, v.AwardDecided, str.upper) == {"votes": None}


def test_a_tombstone_names_nobody_and_is_what_the_event_allows():
    tombstone = n.new_tombstone()
    assert n.is_tombstone(tombstone) and not n.is_tombstone("r-anna") and not n.is_tombstone(tombstone + "0")
    assert n.ResidentForgetRequested(resident_id="r-anna", tombstone=tombstone).subject() == "r-anna"
    with pytest.raises(ValueError):
        n.ResidentForgetRequested(resident_id="r-anna", tombstone="forgotten-r-anna")
