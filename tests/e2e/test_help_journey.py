"""Asking neighbours in the journey with every service as its own process on the real stack: offers made over the
public API, a help request, the periodic asking pass asking a neighbour whose offer fits, the personal ask reaching
their inbox through Kafka and the notifications service, their yes making them a volunteer and filling the request,
and the initiators seeing who said yes and nobody else."""

from __future__ import annotations

import asyncio

import pytest

from ..system import running_system

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def system(kafka_bootstrap, tmp_path_factory):
    async with running_system(kafka_bootstrap, tmp_path_factory, "e2e-help") as running:
        yield running.journey


async def test_a_help_request_is_answered_by_a_neighbour_who_was_asked(system):
    journey = system
    timeline: list[str] = []
    journey.say = timeline.append
    await journey.register_areas()
    walked = await journey.walk_help()

    assert walked["asked"] in ("Bas", "Cem")  # their offers fit; Dirk offers cooking, which nobody asked for
    assert walked["message"]["kind"] == "help_asked"
    assert walked["message"]["params"]["ask_id"] == walked["ask_id"]
    (request,) = walked["help_requests"]
    assert (request["status"], request["accepted_count"]) == ("filled", 1)
    (helper,) = request["helpers"]
    assert helper["introduction"].startswith(walked["asked"])
    assert [v["resident_id"] for v in walked["volunteers"]] == [helper["resident_id"]]
    other = "r-cem-" if walked["asked"] == "Bas" else "r-bas-"
    assert other not in str(walked["help_requests"]) and other not in str(walked["volunteers"])
    assert walked["statistics"]["asks_accepted"] >= 1
    assert "r-" not in str(walked["statistics"])
    assert any("says: Ja, ik help mee" in line for line in timeline)

    # the offers are withdrawn: a new request of the same initiative asks nobody of them
    owner = walked["owner"]
    again = await journey.call(
        "initiatives",
        "POST",
        f"/api/v1/initiatives/{walked['initiative_id']}/help-requests",
        owner,
        {"tags": ["klussen"], "description": "Nog een klus.", "hours_per_person": 1, "people_needed": 1},
    )
    assert again["status"] == "open"
    await asyncio.sleep(12)  # the asking pass runs every 10 s
    statistics = await journey.call("initiatives", "GET", "/api/v1/areas/WK036300/help-statistics", journey.official())
    assert (statistics["offers"], statistics["asks_sent"]) == (0, walked["statistics"]["asks_sent"])
