"""The load of a chaos run: residents of one wijk pledge to approved initiatives of a pledge round, at a fixed
arrival rate, each pledge with an Idempotency-Key of its own; meanwhile the initiators of awarded initiatives
claim expenses, an official approves them and the finance integration confirms the payouts, and residents
propose new initiatives that neighbours support and the official approves; all while faults are injected.

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
FIRST_APPROVED_CENTS = 30_000  # the first initiative is awarded within the first minute: its claims start early
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
class Claim:
    """One expense claim as its initiator, the official and the finance integration saw it."""

    key: str
    initiative_id: str
    amount_cents: int
    attempts: list[str] = field(default_factory=list)
    status: int | None = None
    claim_id: str | None = None
    decision_key: str = ""
    decision_status: int | None = None
    payout_id: str | None = None
    confirmation_status: int | None = None


@dataclass
class Proposal:
    """One initiative proposed during the run, and how far its client got: proposed (with an Idempotency-Key),
    submitted, supported by neighbours, approved."""

    key: str
    title: str
    attempts: list[str] = field(default_factory=list)
    status: int | None = None  # the proposal's answer
    initiative_id: str | None = None
    reached: str = ""  # the last status the client saw


@dataclass
class Ledger:
    """Every request of the run, by Idempotency-Key."""

    pledges: dict[str, Pledge] = field(default_factory=dict)
    claims: dict[str, Claim] = field(default_factory=dict)
    proposals: dict[str, Proposal] = field(default_factory=dict)
    replayed: int = 0  # answers replayed after an attempt that got none: the process died between commit and answer

    def counts(self) -> dict[str, int]:
        statuses: dict[str, int] = {}
        for pledge in self.pledges.values():
            name = str(pledge.status) if pledge.status is not None else "gave_up"
            statuses[name] = statuses.get(name, 0) + 1
        retried = sum(1 for pledge in self.pledges.values() if len(pledge.attempts) > 1)
        claims = list(self.claims.values())
        return {
            "requests": len(self.pledges),
            "retried": retried,
            **statuses,
            "replayed_after_a_lost_answer": self.replayed,
            "claims": len(claims),
            "claims_201": sum(1 for claim in claims if claim.status == 201),
            "claims_approved": sum(1 for claim in claims if claim.decision_status == 200),
            "payouts_confirmed": sum(1 for claim in claims if claim.confirmation_status == 200),
            "proposals": len(self.proposals),
            "proposals_201": sum(1 for proposal in self.proposals.values() if proposal.status == 201),
            "proposals_approved": sum(1 for proposal in self.proposals.values() if proposal.reached == "approved"),
        }


@dataclass
class Population:
    round_id: str
    initiatives: list[str]
    residents: dict[str, dict[str, str]]  # subject -> headers
    initiators: dict[str, dict[str, str]]  # initiative id -> its initiator's headers
    official: dict[str, str]
    finance: dict[str, str]


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
    approved, initiators = [], {}
    for n in range(initiatives):
        owner = people[subjects[n % len(subjects)]]
        helpers = [people[subjects[(n + k) % len(subjects)]] for k in range(1, len(subjects))]
        amount = FIRST_APPROVED_CENTS if n == 0 else APPROVED_CENTS
        iid = await approved_initiative(journey, owner, helpers, official, amount, f"Initiatief {n} {journey.run}")
        approved.append(iid)
        initiators[iid] = owner
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
    return Population(round_["id"], approved, people, initiators, official, journey.finance())


async def approved_initiative(
    journey: Any,
    owner: dict[str, str],
    helpers: list[dict[str, str]],
    official: dict[str, str],
    amount: int,
    title: str,
) -> str:
    """An initiative of `owner` in the buurt, proposed, supported by `helpers` until it reaches review, and
    approved by `official` for `amount` cents; its id."""
    body = {
        "title": title,
        "summary": "Voor de buurt",
        "description": "Samen doen.",
        "area_code": BUURT,
        "category": "social",
        "budget_lines": [{"description": "materiaal", "amount_cents": amount}],
    }
    initiative = await journey.call("initiatives", "POST", "/api/v1/initiatives", owner, body)
    iid = initiative["id"]
    state = await journey.call("initiatives", "POST", f"/api/v1/initiatives/{iid}/submit", owner)
    supporters = iter(helpers)
    while state["status"] == "gathering_support":
        state = await journey.call("initiatives", "POST", f"/api/v1/initiatives/{iid}/supports", next(supporters))
    await journey.call(
        "initiatives",
        "POST",
        f"/api/v1/initiatives/{iid}/review",
        official,
        {"decision": "approve", "approved_amount_cents": amount},
    )
    return iid


class Client:
    """The clients' HTTP connections: at most `in_flight` requests on the wire at once, the rest wait their turn
    in a queue of their own. (httpcore's pool spends time quadratic in the requests queued in it: with thousands
    waiting while a service restarts, the load generator would spend its CPU there instead of on the load.)"""

    def __init__(self, in_flight: int = 100) -> None:
        self.http = httpx.AsyncClient(limits=httpx.Limits(max_connections=in_flight))
        self.slots = asyncio.Semaphore(in_flight)

    async def request(self, method: str, url: str, **options: Any) -> httpx.Response:
        async with self.slots:
            return await self.http.request(method, url, **options)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.http.aclose()


async def send(
    client: Client,
    ledger: Ledger,
    method: str,
    url: str,
    headers: dict[str, str],
    body: Any,
    tried: list[str],
) -> httpx.Response | None:
    """Send one request until it is answered (any status below 500) or the client gives up; the same headers, so
    the same Idempotency-Key, every time. Each attempt's outcome is appended to `tried`."""
    deadline = time.monotonic() + GIVE_UP_AFTER
    pause = 0.2
    while time.monotonic() < deadline:
        try:
            answer = await client.request(method, url, json=body, headers=headers, timeout=CLIENT_TIMEOUT)
        except httpx.HTTPError as error:
            tried.append(type(error).__name__)
        else:
            tried.append(str(answer.status_code))
            if answer.status_code < 500:
                if answer.headers.get("Idempotent-Replayed") and len(tried) > 1:
                    ledger.replayed += 1
                return answer
        await asyncio.sleep(pause)
        pause = min(pause * 2, 3.0)
    return None


async def pledge_once(client: Client, url: str, population: Population, pledge: Pledge, ledger: Ledger) -> None:
    """Send `pledge` until it is answered or the client gives up; same key every time."""
    headers = population.residents[pledge.resident] | {"Idempotency-Key": pledge.key}
    body = {"initiative_id": pledge.initiative_id, "amount_cents": pledge.amount_cents}
    answer = await send(
        client, ledger, "POST", f"{url}/api/v1/rounds/{population.round_id}/pledges", headers, body, pledge.attempts
    )
    if answer is not None:
        pledge.status = answer.status_code
        if answer.status_code in (200, 201):
            answered = answer.json()
            pledge.pledge_id, pledge.answered_cents = answered["id"], answered["amount_cents"]


async def pledge_at_rate(
    system: System, population: Population, ledger: Ledger, rate: float, seconds: float, rng: random.Random
) -> None:
    """Open loop: a new pledge every 1/`rate` seconds for `seconds`, whatever the answers take; then waits for
    every client to finish."""
    url = system.url("vouchers")
    residents = list(population.residents)
    clients: list[asyncio.Task[Any]] = []
    async with Client() as client:
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
            clients.append(asyncio.create_task(pledge_once(client, url, population, pledge, ledger)))
            sent += 1
        await asyncio.gather(*clients)


async def claim_and_pay(
    system: System, population: Population, ledger: Ledger, seconds: float, rng: random.Random
) -> None:
    """Every second or two, the initiator of an awarded initiative claims an expense of its budget left (with an
    Idempotency-Key), an official approves it (with a key of its own) and the finance integration confirms the
    payout by its id (a repeat with the same bank reference is answered as the first); each step retried like a
    pledge. Claims that find no budget left are refused (409) and change nothing."""
    url = system.url("vouchers")
    clients: list[asyncio.Task[Any]] = []
    async with Client(in_flight=20) as client:
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            initiative = rng.choice(population.initiatives)
            try:
                budget = await client.request(
                    "GET",
                    f"{url}/api/v1/initiative-budgets/{initiative}",
                    headers=population.official,
                    timeout=CLIENT_TIMEOUT,
                )
            except httpx.HTTPError:
                continue
            if budget.status_code != 200 or not budget.json()["awarded_cents"] or budget.json()["left_cents"] < 100:
                continue
            claim = Claim(
                key=str(uuid.UUID(int=rng.getrandbits(128))),
                initiative_id=initiative,
                amount_cents=rng.randint(100, min(5_000, budget.json()["left_cents"])),
                decision_key=str(uuid.UUID(int=rng.getrandbits(128))),
            )
            ledger.claims[claim.key] = claim
            clients.append(asyncio.create_task(_claim(client, url, population, claim, ledger)))
        await asyncio.gather(*clients)


async def _claim(client: Client, url: str, population: Population, claim: Claim, ledger: Ledger) -> None:
    body = {
        "initiative_id": claim.initiative_id,
        "supplier": "Bouwmarkt De Pijp",
        "amount_cents": claim.amount_cents,
        "invoice_reference": f"F-{claim.key[:8]}",
    }
    headers = population.initiators[claim.initiative_id] | {"Idempotency-Key": claim.key}
    answer = await send(client, ledger, "POST", f"{url}/api/v1/expense-claims", headers, body, claim.attempts)
    claim.status = answer.status_code if answer is not None else None
    if claim.status != 201:
        return
    claim.claim_id = answer.json()["id"]
    headers = population.official | {"Idempotency-Key": claim.decision_key}
    decision_url = f"{url}/api/v1/expense-claims/{claim.claim_id}/decision"
    answer = await send(client, ledger, "POST", decision_url, headers, {"decision": "approve"}, claim.attempts)
    claim.decision_status = answer.status_code if answer is not None else None
    if claim.decision_status != 200:
        return
    claim.payout_id = answer.json()["payout_id"]
    confirmation = {"bank_reference": f"SEPA-{claim.key[:12]}", "paid_at": datetime.now(UTC).isoformat()}
    confirm_url = f"{url}/api/v1/payouts/{claim.payout_id}/confirmation"
    answer = await send(client, ledger, "POST", confirm_url, population.finance, confirmation, claim.attempts)
    claim.confirmation_status = answer.status_code if answer is not None else None


async def propose_and_approve(
    system: System, population: Population, ledger: Ledger, seconds: float, rng: random.Random
) -> None:
    """Every few seconds a resident proposes an initiative (with an Idempotency-Key) and submits it, neighbours
    support it until it goes to review, and the official approves it. A step whose answer was lost is sent again;
    a state change that already happened is refused (409) and the client reads the state instead."""
    url = system.url("initiatives")
    clients: list[asyncio.Task[Any]] = []
    async with Client(in_flight=20) as client:
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            await asyncio.sleep(rng.uniform(2.0, 6.0))
            key = str(uuid.UUID(int=rng.getrandbits(128)))
            proposal = Proposal(key=key, title=f"Voorstel {system.journey.run} {key[:8]}")
            ledger.proposals[key] = proposal
            people = rng.sample(list(population.residents.values()), 6)
            clients.append(asyncio.create_task(_propose(client, url, population, proposal, people, ledger)))
        await asyncio.gather(*clients)


async def _propose(
    client: Client,
    url: str,
    population: Population,
    proposal: Proposal,
    people: list[dict[str, str]],
    ledger: Ledger,
) -> None:
    owner, neighbours = people[0], people[1:]
    body = {
        "title": proposal.title,
        "summary": "Voor de buurt",
        "description": "Samen doen.",
        "area_code": BUURT,
        "category": "social",
        "budget_lines": [{"description": "materiaal", "amount_cents": 50_000}],
    }
    headers = owner | {"Idempotency-Key": proposal.key}
    answer = await send(client, ledger, "POST", f"{url}/api/v1/initiatives", headers, body, proposal.attempts)
    proposal.status = answer.status_code if answer is not None else None
    if proposal.status != 201:
        return
    proposal.initiative_id = iid = answer.json()["id"]
    proposal.reached = "draft"
    steps = [(owner, "submit", None)] + [(n, "supports", None) for n in neighbours]
    steps.append((population.official, "review", {"decision": "approve", "approved_amount_cents": 50_000}))
    for headers, step, step_body in steps:
        if step == "supports" and proposal.reached != "gathering_support":
            continue
        answer = await send(
            client, ledger, "POST", f"{url}/api/v1/initiatives/{iid}/{step}", headers, step_body, proposal.attempts
        )
        if answer is None:
            return
        if answer.status_code == 409:  # done before its answer was lost, or not the step's turn: read the state
            read = f"{url}/api/v1/initiatives/{iid}"
            answer = await send(client, ledger, "GET", read, owner, None, proposal.attempts)
            if answer is None:
                return
        if answer.status_code in (200, 201) and "status" in answer.json():
            proposal.reached = answer.json()["status"]
