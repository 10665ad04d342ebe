"""The messages about Equal Shares rounds: a round that opens asks the neighbours to vote, and an award names the
method that decided it, in both languages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from notifications.domain.messages import render
from notifications.domain.recipients import params

from buurtkracht_contracts import vouchers as v

pytestmark = pytest.mark.unit

ROUND = uuid.UUID(int=1)


def opened(mechanism: str) -> v.RoundOpened:
    return v.RoundOpened(
        round_id=ROUND,
        area_code="WK036300",
        name="Gelijke delen",
        mechanism=mechanism,
        total_budget_cents=100_000,
        voucher_amount_cents=None,
        opens_at=datetime(2026, 12, 1, tzinfo=UTC),
        closes_at=datetime(2026, 12, 15, tzinfo=UTC),
    )


def awarded(mechanism: str) -> v.InitiativeAwarded:
    return v.InitiativeAwarded(
        round_id=ROUND,
        area_code="WK036300",
        initiative_id=uuid.UUID(int=2),
        mechanism=mechanism,
        awarded_amount_cents=40_000,
    )


@pytest.mark.parametrize(
    ("language", "asks", "names"),
    [
        ("nl", "Stem op de initiatieven die u steunt", "Methode van Gelijke Delen"),
        ("en", "Vote for the initiatives you support", "Method of Equal Shares"),
    ],
)
def test_an_equal_shares_round_asks_to_vote_and_its_award_names_the_method(language, asks, names):
    round_opened = render("round_opened", language, params(opened("equal_shares"), "round_opened"), "https://b.example")
    assert asks in round_opened.text
    pledge_round = render("round_opened", language, params(opened("committee"), "round_opened"), "https://b.example")
    assert asks not in pledge_round.text
    award = render(
        "initiative_awarded",
        language,
        params(awarded("equal_shares"), "initiative_awarded", initiative_title="Geveltuinen"),
        "https://b.example",
    )
    assert names in award.text
    assert (
        names
        not in render(
            "initiative_awarded",
            language,
            params(awarded("committee"), "initiative_awarded", initiative_title="Geveltuinen"),
            "https://b.example",
        ).text
    )
