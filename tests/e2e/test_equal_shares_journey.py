"""The Equal Shares round of the journey with every service as its own process on the real stack: ballots cast and
changed over the public API, the close deciding and booking, the initiatives service hearing of the award, the
outcome explained and the round published as a Pabulib file that pabutools reads back."""

from __future__ import annotations

import pytest
from pabutools.election.pabulib import parse_pabulib_from_string

from ..system import running_system

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def system(kafka_bootstrap, tmp_path_factory):
    async with running_system(kafka_bootstrap, tmp_path_factory, "e2e-es") as running:
        yield running.journey


async def test_an_equal_shares_round_from_ballots_to_explained_awards(system):
    journey = system
    timeline: list[str] = []
    journey.say = timeline.append
    await journey.register_areas()
    walked = await journey.walk_equal_shares()

    play, garden = walked["initiative_ids"]
    assert walked["funded"] == [play]  # 4 supporters afford the playground; the garden's 3 cannot afford theirs
    results = {r["initiative_id"]: r for r in walked["outcome"]["results"]}
    assert (results[play]["supporters"], results[garden]["supporters"]) == (4, 3)
    assert results[garden]["reason"] == "supporters_short"
    assert 0 < results[garden]["supporters_money_cents"] < results[garden]["cost_cents"]
    assert walked["outcome"]["voters"] == 6

    states = {
        iid: (await journey.call("initiatives", "GET", f"/api/v1/initiatives/{iid}", journey.official()))["status"]
        for iid in (play, garden)
    }
    assert states[play] == "funded", states

    instance, profile = parse_pabulib_from_string(walked["pabulib"])
    assert len(profile) == 6 and int(instance.budget_limit) == 60_000
    assert {p.name for p in instance if instance.project_meta[p]["selected"] == "1"} >= {play}
    assert any("Equal Shares round" in line for line in timeline)
