"""The load of a chaos run: residents of one wijk pledge to approved initiatives of a pledge round, at a fixed
arrival rate, each pledge with an Idempotency-Key of its own, while faults are injected.

A client that gets no answer (a timeout, a refused connection, a 5xx while a service restarts) tries again with
the same key, as a resident's browser would, until it gets an answer or gives up. Every request and every
attempt is kept in `Ledger`, which the checker compares with what the services hold.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from ..system import System

WIJK, BUURT = "WK036300", "BU03630001"
WALLET_CENTS = 1_000_000  # per resident: enough that wallets last the run, so most pledges move money
APPROVED_CENTS = 1_500_000  # the most one initiative may ask: awards happen, and later pledges are refused
CLIENT_TIMEOUT = 5.0  # seconds a client waits for one attempt
GIVE_UP_AFTER = 90.0  # seconds a client keeps retrying one request


@dataclass
class Pledge:
    """One pledge request as its client saw it."""

    key: str
    resident: str
    initiative_id: str
    amount_cents: int
    attempts: list[str] = field(default_factory=list)  # each attempt's status code, or the error's name
    status: int | None = None  # the final answer's status; None when the client gave up
    pledge_id: str | None = None
    answered_cents: int | None = None


@dataclass
class Ledger:
    """Every request of the run, by Idempotency-Key."""

    pledges: dict[str, Pledge] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        statuses: dict[str, int] = {}
        for pledge in self.pledges.values():
            name = str(pledge.status) if pledge.status is not None else "gave_up"
            statuses[name] = statuses.get(name, 0) + 1
        retried = sum(1 for pledge in self.pledges.values() if len(pledge.attempts) > 1)
        return {"requests": len(self.pledges), "retried": retried, **statuses}


@dataclass
class Population:
    round_id: str
    initiatives: list[str]
    residents: dict[str, dict[str, str]]  # subject -> headers


async def prepare(system: System, residents: int, initiatives: int) -> Population:
    """Before any fault: residents with an address and a wallet, approved initiatives the vouchers service knows,
    an open pledge round of the wijk, and a webhook subscription to voucher events."""
    journey = system.journey
    official = journey.official(WIJK)
    people = {f"r-c{n}-{journey.run}": journey.resident(f"c{n}", BUURT) for n in range(residents)}
    for subject, headers in people.items():
        await journey.call(
            "notifications", "PUT", "/api/v1/contact-details/me", headers, {"email": f"{subject}@example.nl"}
        )
    await journey.call(
        "notifications",
        "POST",
        "/api/v1/webhook-subscriptions",
        journey.admin(),
        {"url": system.hooks.url, "event_types": ["nl.buurtkracht.vouchers.*"], "description": "chaos"},
    )
    subjects = list(people)
    approved = []
    for n in range(initiatives):
        owner = people[subjects[n % len(subjects)]]
        body = {
            "title": f"Initiatief {n} {journey.run}",
            "summary": "Voor de buurt",
            "description": "Samen doen.",
            "area_code": BUURT,
            "category": "social",
            "budget_lines": [{"description": "materiaal", "amount_cents": APPROVED_CENTS}],
        }
        initiative = await journey.call("initiatives", "POST", "/api/v1/initiatives", owner, body)
        iid = initiative["id"]
        state = await journey.call("initiatives", "POST", f"/api/v1/initiatives/{iid}/submit", owner)
        supporter = 1
        while state["status"] == "gathering_support":
            helper = people[subjects[(n + supporter) % len(subjects)]]
            state = await journey.call("initiatives", "POST", f"/api/v1/initiatives/{iid}/supports", helper)
            supporter += 1
        await journey.call(
            "initiatives",
            "POST",
            f"/api/v1/initiatives/{iid}/review",
            official,
            {"decision": "approve", "approved_amount_cents": APPROVED_CENTS},
        )
        approved.append(iid)
    now = datetime.now(UTC)
    round_ = await journey.call(
        "vouchers",
        "POST",
        "/api/v1/rounds",
        official | {"Idempotency-Key": f"chaos-round-{journey.run}"},
        {
            "area_code": WIJK,
            "name": f"Chaos {journey.run}",
            "total_budget_cents": WALLET_CENTS * residents,
            "opens_at": (now - timedelta(minutes=1)).isoformat(),
            "closes_at": (now + timedelta(days=30)).isoformat(),
            "mechanism": "pledge",
            "voucher_amount_cents": WALLET_CENTS,
        },
    )
    await journey.call(
        "vouchers", "POST", f"/api/v1/rounds/{round_['id']}/wallet-issuances", official, {"resident_ids": subjects}
    )
    for iid in approved:
        await journey.until(
            "the vouchers service to know the approved initiatives",
            lambda iid=iid: journey.call("vouchers", "GET", f"/api/v1/initiative-budgets/{iid}", official),
        )
    return Population(round_["id"], approved, people)


async def pledge_once(client: httpx.AsyncClient, url: str, population: Population, pledge: Pledge) -> None:
    """Send `pledge` until it is answered (any status below 500) or the client gives up; same key every time."""
    headers = population.residents[pledge.resident] | {"Idempotency-Key": pledge.key}
    body = {"initiative_id": pledge.initiative_id, "amount_cents": pledge.amount_cents}
    deadline = time.monotonic() + GIVE_UP_AFTER
    pause = 0.2
    while time.monotonic() < deadline:
        try:
            answer = await client.post(
                f"{url}/api/v1/rounds/{population.round_id}/pledges", json=body, headers=headers, timeout=CLIENT_TIMEOUT
            )
        except httpx.HTTPError as error:
            pledge.attempts.append(type(error).__name__)
        else:
            pledge.attempts.append(str(answer.status_code))
            if answer.status_code < 500:
                pledge.status = answer.status_code
                if answer.status_code in (200, 201):
                    answered = answer.json()
                    pledge.pledge_id, pledge.answered_cents = answered["id"], answered["amount_cents"]
                return
        await asyncio.sleep(pause)
        pause = min(pause * 2, 3.0)


async def pledge_at_rate(
    system: System, population: Population, ledger: Ledger, rate: float, seconds: float, rng: random.Random
) -> None:
    """Open loop: a new pledge every 1/`rate` seconds for `seconds`, whatever the answers take; then waits for
    every client to finish."""
    url = system.url("vouchers")
    residents = list(population.residents)
    clients: list[asyncio.Task[Any]] = []
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=200)) as client:
        started = time.monotonic()
        sent = 0
        while (now := time.monotonic() - started) < seconds:
            due = sent / rate
            if due > now:
                await asyncio.sleep(due - now)
            pledge = Pledge(
                key=str(uuid.UUID(int=rng.getrandbits(128))),
                resident=rng.choice(residents),
                initiative_id=rng.choice(population.initiatives),
                amount_cents=rng.randint(100, 2_000),
            )
            ledger.pledges[pledge.key] = pledge
            clients.append(asyncio.create_task(pledge_once(client, url, population, pledge)))
            sent += 1
        await asyncio.gather(*clients)
