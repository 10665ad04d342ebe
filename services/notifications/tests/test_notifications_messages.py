"""Who hears what (a table over every event type) and every message in both languages, rendered strictly."""

from __future__ import annotations

import types
import typing
import uuid
from datetime import UTC, datetime

import pytest
from notifications.domain.messages import LANGUAGES, catalogue, euro, render, render_digest
from notifications.domain.recipients import KINDS, RULES, Audience, actor, rules_for
from pydantic import BaseModel

from buurtkracht_contracts import initiatives as i
from buurtkracht_contracts import vouchers as v
from buurtkracht_contracts.registry import models_on
from buurtkracht_contracts.topics import INITIATIVES_EVENTS, VOUCHERS_EVENTS

pytestmark = pytest.mark.unit

CONSUMED = models_on(INITIATIVES_EVENTS) + models_on(VOUCHERS_EVENTS)


def sample(model: type[BaseModel]) -> BaseModel:
    """An instance of `model` with a plausible value in every field."""
    values: dict[str, typing.Any] = {}
    for name, field in model.model_fields.items():
        values[name] = _value(field.annotation, name)
    return model(**values)


def _value(annotation: typing.Any, name: str) -> typing.Any:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _value(args[0], name)
    if origin in (typing.Union, types.UnionType):
        return _value(next(a for a in args if a is not type(None)), name)
    if origin is typing.Literal:
        return args[0]
    if origin is list:
        return [_value(args[0], name)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return sample(annotation)
    if annotation is uuid.UUID:
        return uuid.uuid4()
    if annotation is datetime:
        return datetime(2026, 11, 28, 12, tzinfo=UTC)
    if annotation is bool:
        return False
    if annotation is int:
        return 12_345
    return {"area_code": "BU03630001"}.get(name, f"sample {name}")


def test_every_consumed_event_type_has_a_rule():
    assert set(CONSUMED) == set(RULES)


@pytest.mark.parametrize(
    "event_type, kinds_and_audiences",
    [
        (i.InitiativeSubmitted, [("initiative_submitted", {"initiators"}), ("new_initiative_in_area", {"followers"})]),
        (i.InitiativeSupported, [("new_supporter", {"initiators"})]),
        (i.SupportThresholdReached, [("threshold_reached", {"initiators"}), ("initiative_in_review", {"officials"})]),
        (i.InitiativeApproved, [("initiative_approved", {"initiators", "supporters", "volunteers"})]),
        (i.VolunteerJoined, [("new_volunteer", {"initiators"})]),
        (i.CoInitiatorJoined, [("co_initiator_joined", {"initiators"})]),
        (i.InitiativeCompleted, [("initiative_completed", {"initiators", "supporters", "volunteers", "followers"})]),
        (v.RoundOpened, [("round_opened", {"followers"})]),
        (v.WalletsIssued, [("wallet_issued", {"named"})]),
        (v.InitiativeAwarded, [("initiative_awarded", {"initiators", "supporters", "volunteers"})]),
        (v.ExpenseClaimed, [("expense_to_decide", {"officials"})]),
        (v.ExpenseDeclined, [("expense_declined", {"initiators"})]),
        (v.RoundClosed, [("round_results", {"followers", "officials"})]),
        (v.PayoutRequested, []),
        (i.InitiativeFunded, []),
    ],
)
def test_who_hears_what(event_type, kinds_and_audiences):
    rules = rules_for(sample(event_type))
    assert [(rule.kind, {a.value for a in rule.audiences}) for rule in rules] == kinds_and_audiences


def test_a_resident_is_not_told_of_their_own_withdrawn_pledge_nor_an_award_twice():
    pledge = sample(v.PledgeWithdrawn).model_copy(update={"reason": "withdrawn_by_resident"})
    assert rules_for(pledge) == ()
    assert rules_for(pledge.model_copy(update={"reason": "round_closed"}))[0].audiences == (Audience.NAMED,)
    assert rules_for(sample(v.AwardDecided).model_copy(update={"awarded": True})) == ()


def test_the_actor_of_an_event_is_known():
    assert actor(sample(i.InitiativeSupported).model_copy(update={"supporter_id": "r-9"})) == "r-9"
    assert actor(sample(i.InitiativeApproved)) is None


def test_the_resident_who_joins_as_co_initiator_is_the_actor_and_the_pledging_resident_is_not():
    joined = sample(i.CoInitiatorJoined).model_copy(update={"initiators": ["r-owner", "r-9"], "resident_id": "r-9"})
    assert actor(joined) == "r-9"
    assert actor(sample(v.PledgeMade).model_copy(update={"resident_id": "r-9"})) is None


def test_support_ended_by_becoming_an_initiator_is_not_told_as_support_withdrawn():
    withdrawn = sample(i.InitiativeSupportWithdrawn)
    assert rules_for(withdrawn.model_copy(update={"reason": "became_initiator"})) == ()
    for reason in ("withdrawn_by_supporter", None):
        [rule] = rules_for(withdrawn.model_copy(update={"reason": reason}))
        assert (rule.kind, rule.audiences) == ("support_withdrawn", (Audience.INITIATORS,))


def test_every_kind_has_a_message_in_every_language():
    for language in LANGUAGES:
        assert set(KINDS) <= set(catalogue(language)), f"{language} lacks {set(KINDS) - set(catalogue(language))}"


RENDERED = [(model, rule.kind, language) for model in CONSUMED for rule in RULES[model] for language in LANGUAGES]


@pytest.mark.parametrize("model, kind, language", RENDERED, ids=[f"{k}-{lang}" for _, k, lang in RENDERED])
def test_every_message_renders_in_both_languages_without_missing_values(model, kind, language):
    values = sample(model).model_dump(mode="json") | {"initiative_title": "Geveltuinen"}
    message = render(kind, language, values, "https://buurtkracht.example")
    assert message.subject.strip() and "\n" not in message.subject
    assert message.text.strip() and message.html.startswith("<!DOCTYPE html>")
    assert "None" not in message.text and "{{" not in message.text
    assert f'lang="{language}"' in message.html


def test_html_is_escaped_and_amounts_are_euros():
    values = sample(v.ExpenseClaimed).model_dump(mode="json") | {
        "supplier": "<script>x</script>",
        "amount_cents": 123456,
    }
    message = render("expense_to_decide", "nl", values, "https://b.example")
    assert "<script>" not in message.html and "&lt;script&gt;" in message.html
    assert "€ 1.234,56" in message.subject
    assert euro(123456, "en") == "€1,234.56" and euro(5, "nl") == "€ 0,05"


def test_a_digest_groups_messages_and_is_never_empty():
    items = [
        ("new_supporter", sample(i.InitiativeSupported).model_dump(mode="json")),
        ("new_volunteer", sample(i.VolunteerJoined).model_dump(mode="json")),
    ]
    digest = render_digest(items, "en", "https://b.example")
    assert digest.subject == "Buurtkracht: 2 new updates" and digest.text.count("• ") == 2
    with pytest.raises(ValueError):
        render_digest([], "nl", "https://b.example")
