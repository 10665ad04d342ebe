"""Fairness of asking, as a property over many help requests (`domain.help.plan`): a state machine makes requests,
lets time pass, lets the asked say no or yes, and runs asking passes; after every pass the asks it planned are
checked against the state before it.

- every ask fits (a shared tag, enough hours, the request's area within the offer's reach), goes to nobody the
  request must not ask, and keeps everyone within their limit per month;
- nobody is asked again while someone who fits the same request, may be asked and is not resting after a no, has
  never been asked; more generally nobody passed over stands earlier in the queue (never asked, then least recently
  asked, resting last) than someone chosen;
- a request is asked of exactly as many as it misses, or of everyone left who may be asked when fewer remain;
- the plan is the same when run again on the same state (deterministic tie-breaks).
"""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule
from initiatives.domain.help import RESTING, HelpRequest, History, Offer, Reach, Rules, fits, order_key, plan

from tests.properties import run_machine

pytestmark = [pytest.mark.unit, pytest.mark.properties]

TAGS = ("koken", "klussen", "vervoer")
BUURTEN = ("BU03630001", "BU03630002")
AREAS = (*BUURTEN, "WK036300")
RULES = Rules(tags=TAGS)
START = datetime(2026, 1, 1, 9, tzinfo=UTC)

offers_strategy = st.lists(
    st.builds(
        lambda n, buurt, reach, tags, hours, limit: Offer(
            resident_id=f"r-{n}",
            home_buurt=buurt,
            reach=reach,
            tags=frozenset(tags),
            hours_per_month=hours,
            max_asks_per_month=limit,
        ),
        st.just(0),
        st.sampled_from(BUURTEN),
        st.sampled_from(list(Reach)),
        st.sets(st.sampled_from(TAGS), min_size=1),
        st.integers(1, 6),
        st.integers(1, 4),
    ),
    min_size=1,
    max_size=14,
)


class Asking(RuleBasedStateMachine):
    @initialize(offers=offers_strategy)
    def offers_made(self, offers: list[Offer]) -> None:
        self.offers = [
            Offer(f"r-{n:02d}", o.home_buurt, o.reach, o.tags, o.hours_per_month, o.max_asks_per_month)
            for n, o in enumerate(offers)
        ]
        self.now = START
        self.histories: dict[str, History] = {}
        self.requests: dict[uuid.UUID, HelpRequest] = {}
        self.asked: dict[uuid.UUID, set[str]] = {}
        self.open_asks: list[tuple[uuid.UUID, str]] = []
        self.count = 0

    @rule(
        tags=st.sets(st.sampled_from(TAGS), min_size=1),
        area=st.sampled_from(AREAS),
        hours=st.integers(1, 6),
        people=st.integers(1, 3),
    )
    def request_made(self, tags: set[str], area: str, hours: int, people: int) -> None:
        self.count += 1
        request_id = uuid.UUID(int=self.count)
        self.requests[request_id] = HelpRequest(
            request_id, uuid.UUID(int=self.count), area, frozenset(tags), "", hours, people, self.now
        )
        self.asked[request_id] = set()

    @rule(hours=st.integers(1, 24 * 20))
    def time_passes(self, hours: int) -> None:
        self.now += timedelta(hours=hours)

    @precondition(lambda self: self.open_asks)
    @rule(pick=st.integers(0, 1000), yes=st.booleans())
    def an_asked_resident_answers(self, pick: int, yes: bool) -> None:
        request_id, resident = self.open_asks.pop(pick % len(self.open_asks))
        request = self.requests[request_id]
        waiting = request.waiting - 1
        if yes:
            self.requests[request_id] = _with(request, accepted=request.accepted + 1, waiting=waiting)
        else:
            self.histories[resident].last_declined = self.now
            self.requests[request_id] = _with(request, waiting=waiting)

    @rule()
    def an_asking_pass(self) -> None:
        requests = [
            _with(request, not_to_ask=frozenset(self.asked[request.id]))
            for request in self.requests.values()
            if request.accepted < request.people_needed
        ]
        before = copy.deepcopy(self.histories)
        planned = plan(requests, self.offers, copy.deepcopy(before), self.now, RULES)
        assert planned == plan(requests, self.offers, copy.deepcopy(before), self.now, RULES)  # deterministic

        histories = copy.deepcopy(before)  # as the pass goes, request by request (oldest first)
        for request in sorted(requests, key=lambda r: (r.created_at, r.id)):
            chosen = [ask.resident_id for ask in planned if ask.request.id == request.id]
            assert len(chosen) == len(set(chosen))
            eligible = [
                offer
                for offer in self.offers
                if fits(offer, request)
                and offer.resident_id not in request.not_to_ask
                and _asks_within(histories.get(offer.resident_id), self.now) < offer.max_asks_per_month
            ]
            eligible_ids = {offer.resident_id for offer in eligible}
            assert set(chosen) <= eligible_ids, "asked someone who does not fit, must not be asked, or is at the limit"
            assert len(chosen) == min(request.missing, len(eligible_ids))

            def key(resident: str, request: HelpRequest = request) -> tuple:
                return order_key(request, resident, histories.get(resident), self.now, RULES)

            passed_over = eligible_ids - set(chosen)
            for resident in chosen:
                for other in passed_over:
                    assert key(other) >= key(resident), f"{other} stood before {resident} for {request.id}"
                    history = histories.get(resident)
                    if history is not None and history.last_asked is not None and key(other)[0] != RESTING:
                        other_history = histories.get(other)
                        assert other_history is not None and other_history.last_asked is not None, (
                            f"{resident} was asked again while {other} had never been asked"
                        )
            for resident in chosen:
                history = histories.setdefault(resident, History())
                history.asked_at.append(self.now)
                history.last_asked = self.now

        for ask in planned:
            self.asked[ask.request.id].add(ask.resident_id)
            self.open_asks.append((ask.request.id, ask.resident_id))
            self.requests[ask.request.id] = _with(
                self.requests[ask.request.id], waiting=self.requests[ask.request.id].waiting + 1
            )
        self.histories = histories
        for offer in self.offers:  # the limit holds over every window of a month
            history = self.histories.get(offer.resident_id)
            if history:
                assert _asks_within(history, self.now) <= offer.max_asks_per_month


def _asks_within(history: History | None, now: datetime) -> int:
    return history.asks_within(now) if history else 0


def _with(request: HelpRequest, **changes: object) -> HelpRequest:
    values = {name: getattr(request, name) for name in request.__dataclass_fields__}
    return HelpRequest(**(values | changes))  # type: ignore[arg-type]


def test_asking_is_fair_over_many_requests():
    run_machine(Asking, max_examples=60, steps=60)
