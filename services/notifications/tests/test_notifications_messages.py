"""Who hears what (a table over every event type) and every message in both languages, rendered strictly."""

from __future__ import annotations

import types
import typing
import uuid
from datetime import UTC, datetime

import pytest
from notifications.adapters.mail import compose
from notifications.domain.messages import LANGUAGES, catalogue, euro, render, render_digest, template_fields
from notifications.domain.recipients import KINDS, LINKS, RULES, Audience, actor, params, rules_for
from notifications.service import notify
from pydantic import BaseModel

from buurtkracht_contracts import Envelope, Event
from buurtkracht_contracts import initiatives as i
from buurtkracht_contracts import vouchers as v
from buurtkracht_contracts.personal import people_in, personal_fields, pseudonymised
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
        (
            v.SteeringGroupChanged,
            [
                ("steering_group_chair", {"named"}),
                ("steering_group_joined", {"named"}),
                ("steering_group_left", {"named"}),
            ],
        ),
        (v.AwardProposed, [("award_to_vote", {"named"})]),
        (v.AwardDecided, [("award_declined", {"initiators"})]),
        (v.ExpenseClaimed, [("expense_to_decide", {"officials"})]),
        (v.ExpenseDeclined, [("expense_declined", {"initiators"})]),
        (v.RoundClosed, [("round_results", {"followers", "officials"})]),
        (v.PayoutRequested, []),
        (i.InitiativeFunded, []),
        (i.HelpRequested, []),
        (i.NeighbourAsked, [("help_asked", {"named"})]),
        (i.HelpAccepted, []),
        (i.HelpDeclined, []),
        (i.HelpRequestFilled, [("help_request_filled", {"initiators"})]),
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


def test_a_personal_ask_goes_to_the_asked_resident_only_and_opens_the_ask_page():
    from notifications.domain.pages import path
    from notifications.domain.recipients import named_residents

    asked = sample(i.NeighbourAsked).model_copy(update={"resident_id": "r-asked"})
    assert named_residents(asked, "help_asked") == ["r-asked"]
    assert actor(asked) is None  # the asked resident is told, not left out as the one who acted
    kept = params(asked, "help_asked")
    assert "r-asked" not in str(kept)
    assert path("help_asked", kept) == f"/vragen/{asked.ask_id}"


def test_the_actor_of_an_event_is_known():
    assert actor(sample(i.InitiativeSupported).model_copy(update={"supporter_id": "r-9"})) == "r-9"
    assert actor(sample(i.InitiativeApproved)) is None


def test_the_resident_who_joins_as_co_initiator_is_the_actor_and_the_pledging_resident_is_not():
    joined = sample(i.CoInitiatorJoined).model_copy(update={"initiators": ["r-owner", "r-9"], "resident_id": "r-9"})
    assert actor(joined) == "r-9"
    assert actor(sample(v.PledgeMade).model_copy(update={"resident_id": "r-9"})) is None


class FakePeople:
    """What the service knows of an initiative and its people, without a database."""

    def __init__(self, title: str | None = "Geveltuinen", initiators: tuple[str, ...] = ("r-owner",)) -> None:
        self.title, self.initiators = title, list(initiators)

    async def learn_initiative(self, *args) -> None:
        pass

    async def involve(self, *args) -> None:
        pass

    async def uninvolve(self, *args) -> None:
        pass

    async def learn_round(self, *args) -> None:
        pass

    async def title_of(self, initiative_id) -> str | None:
        return self.title

    async def round_name_of(self, round_id) -> str | None:
        return "Voorjaarsronde"

    async def involved(self, initiative_id, role: str) -> list[str]:
        return self.initiators if role == "initiator" else []

    async def followers(self, area_code: str) -> list[str]:
        return ["r-follower"]

    async def officials(self, area_code: str) -> list[str]:
        return ["o-official"]

    async def reachable(self, resident_ids: list[str]) -> dict:
        return {}


async def told(monkeypatch, event: Event, people: FakePeople | None = None) -> dict[str, tuple[str, dict]]:
    """Who gets an inbox message of `event`: recipient -> (kind, the values its templates get)."""
    queued = []

    async def add(notifications) -> int:
        queued.extend(notifications)
        return len(notifications)

    uow = types.SimpleNamespace(people=people or FakePeople(), notifications=types.SimpleNamespace(add=add))
    await notify.handle(uow, event, Envelope.wrap(event, "urn:test"))
    return {n.recipient_id: (n.kind, n.params) for n in queued if n.channel == "inbox"}


def steering_group_changed(**changes) -> v.SteeringGroupChanged:
    return v.SteeringGroupChanged(
        **{
            "area_code": "BU03630001",
            "member_ids": ["m-stays", "m-new", "m-chair"],
            "chair_id": "m-chair",
            "joined_member_ids": ["m-new", "m-chair"],
            "left_member_ids": ["m-gone"],
            "changed_by": "o-official",
        }
        | changes
    )


def award_proposed(**changes) -> v.AwardProposed:
    return v.AwardProposed(
        **{
            "round_id": uuid.uuid4(),
            "area_code": "BU03630001",
            "initiative_id": uuid.uuid4(),
            "decision_id": uuid.uuid4(),
            "amount_cents": 50_000,
            "proposed_by": "m-proposer",
            "quorum": 3,
            "eligible_member_ids": ["m-proposer", "m-1", "m-2"],
        }
        | changes
    )


async def test_new_steering_group_members_hear_they_joined_the_chair_that_they_chair_it_and_leavers_that_they_left(
    monkeypatch,
):
    recipients = await told(monkeypatch, steering_group_changed())
    assert {who: kind for who, (kind, _) in recipients.items()} == {
        "m-chair": "steering_group_chair",
        "m-new": "steering_group_joined",
        "m-gone": "steering_group_left",
    }, "a member who stays and the official who changed the group are not told"
    for _, values in recipients.values():
        assert values["area_code"] == "BU03630001"
        assert not {"chair_id", "member_ids", "joined_member_ids", "left_member_ids"} & set(values)


async def test_a_steering_group_without_a_chair_tells_new_members_only_that_they_joined(monkeypatch):
    recipients = await told(monkeypatch, steering_group_changed(chair_id=None, left_member_ids=[]))
    assert {who: kind for who, (kind, _) in recipients.items()} == {
        "m-new": "steering_group_joined",
        "m-chair": "steering_group_joined",
    }
    unchanged_members = steering_group_changed(chair_id="m-stays", joined_member_ids=[], left_member_ids=[])
    assert await told(monkeypatch, unchanged_members) == {}, "a member who now chairs the group is not told"


async def test_the_official_who_changes_the_steering_group_is_its_actor_and_is_not_told(monkeypatch):
    event = steering_group_changed(joined_member_ids=["m-new", "o-official"], chair_id=None)
    assert actor(event) == "o-official"
    assert set(await told(monkeypatch, event)) == {"m-new", "m-gone"}


async def test_the_eligible_members_but_the_proposer_hear_that_an_award_proposal_awaits_their_vote(monkeypatch):
    event = award_proposed()
    assert actor(event) == "m-proposer"
    recipients = await told(monkeypatch, event)
    assert {who: kind for who, (kind, _) in recipients.items()} == {"m-1": "award_to_vote", "m-2": "award_to_vote"}
    values = recipients["m-1"][1]
    assert values["initiative_title"] == "Geveltuinen" and "eligible_member_ids" not in values
    for language, line in (("nl", "Stem over budget voor 'Geveltuinen'"), ("en", "Vote on a budget for 'Geveltuinen'")):
        message = render("award_to_vote", language, values, "https://b.example")
        assert message.subject == line
        assert f"https://b.example/rondes/{event.round_id}" in message.text


async def test_an_award_proposal_of_an_initiative_of_unknown_title_names_the_amount_and_links_to_the_round(
    monkeypatch,
):
    event = award_proposed()
    [(_, values), _] = (await told(monkeypatch, event, FakePeople(title=None))).values()
    assert values["initiative_title"] == ""
    dutch = render("award_to_vote", "nl", values, "https://b.example")
    english = render("award_to_vote", "en", values, "https://b.example")
    assert dutch.subject == "Stem over een voorstel om € 500,00 toe te kennen"
    assert english.subject == "Vote on a proposal to award €500.00"
    for message in (dutch, english):
        assert "''" not in message.text and f"https://b.example/rondes/{event.round_id}" in message.text


async def test_a_proposal_decided_by_the_proposers_own_vote_asks_nobody_to_vote(monkeypatch):
    assert rules_for(award_proposed(quorum=1)) == ()
    assert await told(monkeypatch, award_proposed(quorum=1)) == {}


def test_the_proposer_of_a_decided_award_is_not_its_actor():
    assert actor(sample(v.AwardDecided).model_copy(update={"proposed_by": "m-proposer"})) is None


async def test_a_proposal_not_carried_tells_the_initiators_it_was_not_awarded(monkeypatch):
    decided = v.AwardDecided(
        round_id=uuid.uuid4(),
        area_code="BU03630001",
        initiative_id=uuid.uuid4(),
        decision_id=uuid.uuid4(),
        amount_cents=50_000,
        awarded=False,
        votes=[
            v.Vote(member_id="m-proposer", vote="for"),
            v.Vote(member_id="m-1", vote="against"),
            v.Vote(member_id="m-2", vote="against"),
        ],
        quorum=3,
        proposed_by="m-proposer",
    )
    recipients = await told(monkeypatch, decided, FakePeople(initiators=("r-owner", "r-co")))
    assert {who: kind for who, (kind, _) in recipients.items()} == {
        "r-owner": "award_declined",
        "r-co": "award_declined",
    }
    values = recipients["r-owner"][1]
    dutch = render("award_declined", "nl", values, "https://b.example")
    assert dutch.subject == "De regiegroep kent 'Geveltuinen' geen budget toe"
    assert "1 voor, 2 tegen. Het voorstel is niet aangenomen. Er is geen budget toegekend." in dutch.text
    english = render("award_declined", "en", values, "https://b.example")
    assert english.subject == "The steering group does not award 'Geveltuinen' a budget"
    assert "1 for, 2 against. The proposal was not carried. No budget was awarded." in english.text
    assert "het voorstel om € 500,00 toe te kennen" in dutch.text and "kan beginnen" not in dutch.text
    assert "the proposal to award €500.00" in english.text and "can start" not in english.text

    too_few = decided.model_copy(update={"votes": decided.votes[:2], "quorum": 3})
    dutch = render("award_declined", "nl", params(too_few, "award_declined", initiative_title=""), "https://b.example")
    assert dutch.subject == "De regiegroep kent je initiatief geen budget toe"
    assert "Er waren minstens 3 stemmen nodig, dus het voorstel is niet aangenomen." in dutch.text
    english = render(
        "award_declined", "en", params(too_few, "award_declined", initiative_title=""), "https://b.example"
    )
    assert "It needed at least 3 votes, so the proposal was not carried." in english.text


@pytest.mark.parametrize("language", LANGUAGES)
def test_steering_group_messages_render_in_both_languages_without_naming_members(language):
    kinds = ("steering_group_chair", "steering_group_joined", "steering_group_left")
    values = {kind: params(steering_group_changed(), kind) for kind in kinds}
    subjects = {kind: render(kind, language, values[kind], "https://b.example").subject for kind in kinds}
    assert (
        subjects
        == {
            "nl": {
                "steering_group_chair": "Je bent voorzitter van de regiegroep van BU03630001",
                "steering_group_joined": "Je bent lid van de regiegroep van BU03630001",
                "steering_group_left": "Je bent geen lid meer van de regiegroep van BU03630001",
            },
            "en": {
                "steering_group_chair": "You chair the steering group of BU03630001",
                "steering_group_joined": "You are a member of the steering group of BU03630001",
                "steering_group_left": "You are no longer a member of the steering group of BU03630001",
            },
        }[language]
    )
    for kind in subjects:
        assert "m-" not in render(kind, language, values[kind], "https://b.example").text


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
    values = params(sample(model), kind, initiative_title="Geveltuinen")  # what a stored message holds
    message = render(kind, language, values, "https://buurtkracht.example")
    assert message.subject.strip() and "\n" not in message.subject
    assert message.text.strip() and message.html.startswith("<!DOCTYPE html>")
    assert "None" not in message.text and "{{" not in message.text
    assert f'lang="{language}"' in message.html


def test_html_is_escaped_and_amounts_are_euros():
    values = sample(v.ExpenseClaimed).model_dump(mode="json") | {
        "supplier": "<script>x</script>",
        "amount_cents": 123456,
        "initiative_title": "<b>Bankjes</b>",
    }
    message = render("expense_to_decide", "nl", values, "https://b.example")
    assert "<script>" not in message.html and "&lt;script&gt;" in message.html
    assert "<b>" not in message.html and "&lt;b&gt;Bankjes&lt;/b&gt;" in message.html
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


def test_a_message_about_a_decision_tells_how_many_voted_how_but_never_who():
    decided = v.AwardDecided(
        round_id=uuid.uuid4(),
        area_code="BU03630001",
        initiative_id=uuid.uuid4(),
        decision_id=uuid.uuid4(),
        amount_cents=50_000,
        awarded=False,
        votes=[v.Vote(member_id="m-1", vote="for"), v.Vote(member_id="m-2", vote="against")],
        quorum=2,
    )
    values = params(decided, "award_declined")
    assert (values["votes_for"], values["votes_against"], values["votes_cast"]) == (1, 1, 2)
    assert "votes" not in values and "m-1" not in str(values) and "m-2" not in str(values)


def _strings(value: typing.Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(_strings(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(_strings(item) for item in value))
    return set()


def with_people(model: type[Event]) -> Event:
    """A sample of `model` in which every field that names a person names someone else ("p-1", "p-2", ...)."""
    event = sample(model)
    counter = iter(range(1, 10_000))
    return model.model_validate(pseudonymised(event.model_dump(mode="json"), model, lambda _: f"p-{next(counter)}"))


PEOPLE_KINDS = [(model, rule.kind) for model in CONSUMED for rule in RULES[model] if personal_fields(model)]


@pytest.mark.parametrize("model, kind", PEOPLE_KINDS, ids=[f"{m.__name__}-{k}" for m, k in PEOPLE_KINDS])
def test_a_stored_message_names_nobody_whatever_people_its_event_names(model, kind):
    event = with_people(model)
    named = people_in(event.model_dump(mode="json"), model)
    values = params(event, kind, initiative_title="Geveltuinen")
    assert not named & _strings(values), f"a message {kind} would keep {sorted(named & _strings(values))}"
    assert set(values) <= template_fields(kind) | LINKS, "it keeps only what its templates use and links to"


def test_what_a_message_keeps_is_what_its_templates_use():
    about = {"title", "initiative_title", "name", "round_name", "area_code"}  # what the layout says it is about
    assert template_fields("new_supporter") == {"support_count", "initiative_id"} | about, "its page: the initiative"
    assert template_fields("round_results") == {"summary", "round_id"} | about, "the top name of `summary.x`"
    assert template_fields("expense_to_decide") >= {"claim_id", "supplier", "amount_cents"}, "its page: the claim"
    supported = sample(i.InitiativeSupported).model_copy(update={"supporter_id": "r-9", "initiators": ["r-1"]})
    assert params(supported, "new_supporter") == {
        "title": supported.title,
        "support_count": supported.support_count,
        "initiative_id": str(supported.initiative_id),
        "area_code": supported.area_code,
    }


async def test_followers_told_an_initiative_is_done_do_not_learn_who_initiated_or_reported_it(monkeypatch):
    completed = sample(i.InitiativeCompleted).model_copy(update={"initiators": ["r-owner"], "reported_by": "r-owner"})
    told_whom = await told(monkeypatch, completed)
    kind, values = told_whom["r-follower"]
    assert kind == "initiative_completed"
    assert "r-owner" not in str(values) and "initiators" not in values and "reported_by" not in values


async def test_initiators_told_of_a_new_co_initiator_or_volunteer_are_not_given_their_id(monkeypatch):
    joined = sample(i.CoInitiatorJoined).model_copy(update={"initiators": ["r-owner", "r-co"], "resident_id": "r-co"})
    volunteer = sample(i.VolunteerJoined).model_copy(update={"initiators": ["r-owner"], "volunteer_id": "r-helper"})
    for event, other in ((joined, "r-co"), (volunteer, "r-helper")):
        [(_, values)] = [told for who, told in (await told(monkeypatch, event)).items() if who == "r-owner"]
        assert other not in str(values)


async def test_the_initiators_told_an_award_was_declined_do_not_learn_who_proposed_it(monkeypatch):
    decided = sample(v.AwardDecided).model_copy(
        update={"proposed_by": "m-proposer", "votes": [v.Vote(member_id="m-proposer", vote="for")], "quorum": 3}
    )
    [(kind, values)] = (await told(monkeypatch, decided)).values()
    assert kind == "award_declined" and "m-proposer" not in str(values)
    for language in LANGUAGES:
        assert "m-proposer" not in render(kind, language, values, "https://b.example").text


@pytest.mark.parametrize("model", [v.ExpenseApproved, v.ExpenseDeclined])
async def test_the_initiators_told_of_a_decided_expense_claim_do_not_learn_which_member_decided_it(monkeypatch, model):
    decided = sample(model).model_copy(update={"decided_by": "m-decider"})
    [(kind, values)] = (await told(monkeypatch, decided)).values()
    assert "decided_by" not in values and "m-decider" not in str(values)
    for language in LANGUAGES:
        assert "m-decider" not in render(kind, language, values, "https://b.example").text


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_pledge_returned_when_its_round_closed_does_not_promise_a_wallet_balance(language):
    closed = sample(v.PledgeWithdrawn).model_copy(
        update={"reason": "round_closed", "amount_cents": 2_500, "wallet_balance_cents": 0}
    )
    values = params(closed, "pledge_returned", initiative_title="Geveltuinen")
    message = render("pledge_returned", language, values, "https://b.example")
    assert ("buurtbudget" if language == "nl" else "neighbourhood budget") in message.subject
    assert "0,00" not in message.text and "0.00" not in message.text and "'Geveltuinen'" in message.text
    withdrawn = closed.model_copy(update={"reason": "initiative_withdrawn", "wallet_balance_cents": 2_500})
    values = params(withdrawn, "pledge_returned", initiative_title="Geveltuinen")
    message = render("pledge_returned", language, values, "https://b.example")
    assert ("25,00" if language == "nl" else "25.00") in message.text and "'Geveltuinen'" in message.text


@pytest.mark.parametrize("separator", ["\n", "\r\n", "\u2028", "\u2029", "\x0b", "\x0c", "\x85", "\t", "\x00", "\x1b"])
def test_a_subject_is_one_line_whatever_the_title_held_and_the_message_can_be_composed(separator):
    values = {"title": f"Geveltuinen{separator}Bcc: iemand@example.nl", "reason": "Buiten budget", "initiative_id": "x"}
    message = render("initiative_rejected", "nl", values, "https://b.example")
    assert message.subject in (
        "'Geveltuinen Bcc: iemand@example.nl' is afgewezen",
        "'GeveltuinenBcc: iemand@example.nl' is afgewezen",  # a control character that is not a space just goes
    )
    email = compose(uuid.uuid4(), "anna@example.nl", message, "Buurtkracht <noreply@example.nl>", "nl")
    assert email["Subject"] == message.subject and "Bcc" not in email.keys()
