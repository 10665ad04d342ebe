"""The resident journey through the three services' public APIs, with a readable timeline.

Used by `make demo` (against the running system of `make run`), by `make run` to load demo data, and by
the end-to-end tests (against services they start themselves). Every step goes through HTTP only; the
timeline also shows the events on Kafka and the notifications that followed.

    python deploy/local/journey.py demo        # walk the journey, printing the timeline
    python deploy/local/journey.py demo-data   # load demo data once (a second run changes nothing)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from lxml import etree
from lxml.builder import ElementMaker

from buurtkracht_kit.auth import mint

CITY, WIJK = "GM0363", "WK036300"  # Amsterdam; a wijk of Centrum and three of its buurten (CBS codes)
BUURTEN = ("BU03630000", "BU03630001", "BU03630002")
# the municipality's areas, as it imports them from the CBS wijk- en buurtkaart: a committed sample holding the above
AREAS = Path(__file__).resolve().parent / "areas" / "cbs-wijkenbuurten-2019-amsterdam-sample.geojson"
ISSUER, AUDIENCE = "https://login.buurtkracht.local", "buurtkracht"


@dataclass
class Endpoints:
    initiatives: str = "http://127.0.0.1:8001"
    vouchers: str = "http://127.0.0.1:8002"
    notifications: str = "http://127.0.0.1:8003"
    portal: str = "http://127.0.0.1:8004"
    kafka: str = os.environ.get("BK_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    private_key: Path = Path(os.environ.get("BK_JWT_PRIVATE_KEY_FILE", ".local/keys/jwt-private.pem"))


class Refused(Exception):
    def __init__(self, answer: httpx.Response) -> None:
        super().__init__(f"{answer.request.method} {answer.request.url.path}: {answer.status_code} {answer.text}")
        self.answer = answer


@dataclass
class Journey:
    """A walk through the system; `say` prints the timeline (or collects it, in tests)."""

    endpoints: Endpoints
    say: Any = print
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self._key = self.endpoints.private_key.read_text()
        self.http = httpx.AsyncClient(timeout=30)

    def token(self, sub: str, roles: list[str], areas: list[str]) -> dict[str, str]:
        issued = mint(self._key, issuer=ISSUER, audience=AUDIENCE, subject=sub, roles=roles, areas=areas)
        return {"Authorization": f"Bearer {issued}"}

    def resident(self, name: str, buurt: str = BUURTEN[1]) -> dict[str, str]:
        return self.token(f"r-{name}-{self.run}", ["resident"], [buurt])

    def official(self, area: str = WIJK) -> dict[str, str]:
        return self.token(f"o-wijkcoordinator-{self.run}", ["official"], [area])

    def steering(self, n: int) -> dict[str, str]:
        return self.token(f"sg-{n}-{self.run}", ["steering_group", "resident"], [WIJK])

    def admin(self) -> dict[str, str]:
        return self.token(f"admin-{self.run}", ["admin"], [CITY])

    def finance(self) -> dict[str, str]:
        return self.token("finance-integration", ["integration"], [])

    def step(self, text: str) -> None:
        self.say(f"[{time.monotonic() - self.started:6.1f}s] {text}")

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        headers: dict[str, str],
        json: Any = None,
        expect: int | tuple[int, ...] = (200, 201, 204),
        **kwargs: Any,
    ) -> Any:
        answer = await self.http.request(
            method, getattr(self.endpoints, service) + path, headers=headers, json=json, **kwargs
        )
        if answer.status_code not in ((expect,) if isinstance(expect, int) else expect):
            raise Refused(answer)
        return answer.json() if answer.content and answer.headers.get("content-type", "").endswith("json") else None

    async def until(self, what: str, check, timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if result := await check():
                    return result
            except Refused:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout:.0f}s for {what}")
            await asyncio.sleep(0.3)

    async def ready(self, timeout: float = 120.0) -> None:
        for service in ("initiatives", "vouchers", "notifications", "portal"):

            async def is_ready(service=service):
                try:
                    return (await self.http.get(getattr(self.endpoints, service) + "/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await self.until(f"{service} to be ready", is_ready, timeout)

    async def register_areas(self, sample: Path = AREAS) -> dict[str, int]:
        """The municipality's administrator imports its CBS wijk- en buurtkaart (by default the committed sample);
        importing the same file again changes nothing. Initiatives are proposed only for registered areas."""
        content_type = {"Content-Type": "application/geo+json"}
        content = await asyncio.to_thread(sample.read_bytes)
        return await self.call("initiatives", "PUT", "/api/v1/areas", self.admin() | content_type, content=content)

    # -- the journey ---------------------------------------------------------------------------

    async def walk(self, webhook_url: str | None = None) -> dict[str, Any]:
        """The whole journey; returns the ids a test needs to check what followed."""
        owner, official, finance = self.resident("anna", BUURTEN[1]), self.official(), self.finance()
        imported = await self.register_areas()
        self.step(
            f"the municipality imports its CBS wijk- en buurtkaart: {imported['registered']} areas new, "
            f"{imported['changed']} changed, {imported['unchanged']} as they were"
        )
        self.step(f"residents, an official and a steering group of {WIJK} register their email and language")
        await self.call(
            "notifications",
            "PUT",
            "/api/v1/contact-details/me",
            owner,
            {"email": f"anna-{self.run}@example.nl", "language": "nl"},
        )
        await self.call(
            "notifications",
            "PUT",
            "/api/v1/contact-details/me",
            official,
            {"email": f"wijkcoordinator-{self.run}@amsterdam.example", "language": "nl"},
        )
        neighbour = self.resident("bas", BUURTEN[2])
        await self.call(
            "notifications",
            "PUT",
            "/api/v1/contact-details/me",
            neighbour,
            {"email": f"bas-{self.run}@example.nl", "language": "en"},
        )
        await self.call("notifications", "PUT", "/api/v1/area-follows/me", neighbour, {"area_codes": [WIJK]})
        subscription = None
        if webhook_url:
            subscription = await self.call(
                "notifications",
                "POST",
                "/api/v1/webhook-subscriptions",
                self.admin(),
                {
                    "url": webhook_url,
                    "event_types": ["nl.buurtkracht.vouchers.*"],
                    "description": "finance integration",
                },
            )
            self.step(f"an admin subscribes the finance system to voucher events: {webhook_url}")

        initiative = await self.call(
            "initiatives",
            "POST",
            "/api/v1/initiatives",
            owner,
            {
                "title": f"Geveltuinen Oudekerksplein {self.run}",
                "summary": "Groen langs de gevels",
                "description": "Veertig geveltuinen, samen aangelegd en onderhouden.",
                "area_code": BUURTEN[1],
                "category": "green",
                "volunteers_wanted": 6,
                "budget_lines": [
                    {"description": "planten", "amount_cents": 45_000},
                    {"description": "gereedschap", "amount_cents": 15_000},
                ],
            },
        )
        iid = initiative["id"]
        self.step(f"Anna drafts '{initiative['title']}' asking € 600,00 ({iid})")
        submitted = await self.call("initiatives", "POST", f"/api/v1/initiatives/{iid}/submit", owner)
        self.step(f"Anna submits it: {submitted['status']}, {submitted['support_threshold']} supporters needed")
        supporters = 0
        while submitted["status"] == "gathering_support" or supporters == 0:
            supporters += 1
            submitted = await self.call(
                "initiatives",
                "POST",
                f"/api/v1/initiatives/{iid}/supports",
                self.resident(f"buur{supporters}", BUURTEN[1]),
            )
            if submitted["status"] != "gathering_support":
                break
        self.step(f"{supporters} neighbours support it: {submitted['status']}")
        await self.call(
            "initiatives",
            "POST",
            f"/api/v1/initiatives/{iid}/volunteers",
            neighbour,
            {"offer": "Ik heb een bakfiets en groene vingers"},
        )
        self.step("Bas signs up as a volunteer")
        approved = await self.call(
            "initiatives",
            "POST",
            f"/api/v1/initiatives/{iid}/review",
            official,
            {"decision": "approve", "approved_amount_cents": 50_000},
        )
        self.step(f"the wijkcoördinator approves it with € 500,00: {approved['status']}")

        now = datetime.now(UTC)
        round_ = await self.call(
            "vouchers",
            "POST",
            "/api/v1/rounds",
            official | {"Idempotency-Key": f"round-{self.run}"},
            {
                "area_code": WIJK,
                "name": f"Buurtbudget Burgwallen {self.run}",
                "total_budget_cents": 2_000_000,
                "opens_at": (now - timedelta(minutes=1)).isoformat(),
                "closes_at": (now + timedelta(days=30)).isoformat(),
                "mechanism": "pledge",
                "voucher_amount_cents": 2_500,
                "allow_wallet_claims": True,
            },
        )
        rid = round_["id"]
        pledgers = [self.resident(f"pledger{n}", BUURTEN[n % 3]) for n in range(25)]
        ids = [f"r-pledger{n}-{self.run}" for n in range(25)]
        issued = await self.call(
            "vouchers", "POST", f"/api/v1/rounds/{rid}/wallet-issuances", official, {"resident_ids": ids}
        )
        self.step(f"the official opens a pledge round of € 20.000,00 and issues {issued['issued']} wallets of € 25,00")
        await self.until(
            "the vouchers service to know the approved initiative",
            lambda: self.call("vouchers", "GET", f"/api/v1/initiative-budgets/{iid}", owner),
        )
        pledged, awarded = 0, False
        for n, pledger in enumerate(pledgers):
            answer = await self.call(
                "vouchers",
                "POST",
                f"/api/v1/rounds/{rid}/pledges",
                pledger | {"Idempotency-Key": f"pledge-{self.run}-{n}"},
                {"initiative_id": iid, "amount_cents": 2_500},
            )
            pledged += answer["amount_cents"]
            if answer["initiative_awarded"]:
                awarded = True
                self.step(
                    f"{n + 1} residents pledge € {pledged / 100:.2f}; the last pledge is capped at "
                    f"€ {answer['amount_cents'] / 100:.2f}: the initiative is awarded"
                )
                break
        assert awarded, "pledges did not reach the approved amount"
        await self.until("the initiative to be funded", lambda: self._status_is(iid, owner, "funded"))
        self.step("the initiatives service hears of the award: funded")

        committee = await self.committee_round(official)
        started = await self.call("initiatives", "POST", f"/api/v1/initiatives/{iid}/start", owner)
        self.step(f"Anna starts: {started['status']}")
        claim = await self.call(
            "vouchers",
            "POST",
            "/api/v1/expense-claims",
            owner | {"Idempotency-Key": f"claim-{self.run}"},
            {
                "initiative_id": iid,
                "supplier": "Tuincentrum Amstel",
                "amount_cents": 30_000,
                "invoice_reference": f"F-2026-{self.run}",
            },
        )
        self.step(f"Anna claims the plant invoice of € 300,00 ({claim['status']})")
        decided = await self.call(
            "vouchers",
            "POST",
            f"/api/v1/expense-claims/{claim['id']}/decision",
            official | {"Idempotency-Key": f"decide-{self.run}"},
            {"decision": "approve"},
        )
        self.step(f"the official approves it: payout {decided['payout_reference']} requested from finance")
        paid = await self.call(
            "vouchers",
            "POST",
            f"/api/v1/payouts/{decided['payout_id']}/confirmation",
            finance,
            {"bank_reference": f"SEPA-{self.run}", "paid_at": datetime.now(UTC).isoformat()},
        )
        self.step(f"finance confirms the payout by its reference: {paid['status']}")
        report = {
            "what_was_done": "38 geveltuinen aangelegd met 14 buren.",
            "spending": [
                {"description": "planten", "spent_cents": 30_000},
                {"description": "gereedschap", "spent_cents": 0},
            ],
        }
        completed = await self.call("initiatives", "POST", f"/api/v1/initiatives/{iid}/report", owner, report)
        self.step(f"Anna reports what was done and spent: {completed['status']}")
        budget = await self.until("the unspent budget to return", lambda: self._returned(iid, owner))
        self.step(f"the unspent € {budget['returned_cents'] / 100:.2f} returns to the round's pool")
        closed = await self.call("vouchers", "POST", f"/api/v1/rounds/{rid}/close", official)
        self.step(
            f"the round closes: € {closed['totals'].get('returned', 0) / 100:.2f} back to the municipality, "
            f"€ {closed['totals'].get('paid', 0) / 100:.2f} paid out"
        )
        ledger = await self.call("vouchers", "GET", f"/api/v1/rounds/{rid}/ledger", official)
        self.step(
            f"the round's ledger: {len(ledger['entries'])} journal entries, "
            f"{len(ledger['problems'])} invariant violations"
        )
        return {
            "initiative_id": iid,
            "round_id": rid,
            "committee_round_id": committee,
            "owner": owner,
            "neighbour": neighbour,
            "official": official,
            "subscription": subscription,
            "pledgers": pledgers,
            "claim_id": claim["id"],
            "payout_id": decided["payout_id"],
            "ledger": ledger,
        }

    async def committee_round(self, official: dict[str, str]) -> str:
        owner = self.resident("cem", BUURTEN[0])
        initiative = await self.call(
            "initiatives",
            "POST",
            "/api/v1/initiatives",
            owner,
            {
                "title": f"Buurtfeest Zeedijk {self.run}",
                "summary": "Een feest voor de hele buurt",
                "description": "Muziek, eten en kennismaken.",
                "area_code": BUURTEN[0],
                "category": "social",
                "budget_lines": [{"description": "podium", "amount_cents": 80_000}],
            },
        )
        iid = initiative["id"]
        state = await self.call("initiatives", "POST", f"/api/v1/initiatives/{iid}/submit", owner)
        n = 0
        while state["status"] == "gathering_support":
            n += 1
            state = await self.call(
                "initiatives", "POST", f"/api/v1/initiatives/{iid}/supports", self.resident(f"feest{n}", BUURTEN[0])
            )
        await self.call(
            "initiatives",
            "POST",
            f"/api/v1/initiatives/{iid}/review",
            official,
            {"decision": "approve", "approved_amount_cents": 80_000},
        )
        now = datetime.now(UTC)
        round_ = await self.call(
            "vouchers",
            "POST",
            "/api/v1/rounds",
            official | {"Idempotency-Key": f"committee-round-{self.run}"},
            {
                "area_code": WIJK,
                "name": f"Regiegroep Burgwallen {self.run}",
                "total_budget_cents": 500_000,
                "opens_at": (now - timedelta(minutes=1)).isoformat(),
                "closes_at": (now + timedelta(days=60)).isoformat(),
                "mechanism": "committee",
                "committee_quorum": 3,
            },
        )
        await self.until(
            "the vouchers service to know the festival",
            lambda: self.call("vouchers", "GET", f"/api/v1/initiative-budgets/{iid}", owner),
        )
        group = await self.call(
            "vouchers",
            "PUT",
            f"/api/v1/areas/{WIJK}/steering-group",
            official,
            {"members": [{"member_id": f"sg-{m}-{self.run}", "chair": m == 1} for m in (1, 2, 3)]},
        )
        self.step(f"the official registers the steering group of {WIJK}: {len(group['members'])} members")
        proposal = await self.call(
            "vouchers",
            "POST",
            f"/api/v1/rounds/{round_['id']}/awards",
            self.steering(1) | {"Idempotency-Key": f"award-{self.run}"},
            {"initiative_id": iid, "amount_cents": 80_000},
        )
        for m, vote in ((2, "for"), (3, "against")):
            decision = await self.call(
                "vouchers",
                "PUT",
                f"/api/v1/rounds/{round_['id']}/awards/{proposal['id']}/votes/me",
                self.steering(m),
                {"vote": vote},
            )
        self.step(
            f"a committee round: the chair proposes € 800,00 for '{initiative['title']}', each member votes "
            f"with their own sign-in, 2–1: {decision['status']}"
        )
        await self.until("the festival to be funded", lambda: self._status_is(iid, owner, "funded"))
        return round_["id"]

    async def _status_is(self, iid: str, headers: dict[str, str], status: str) -> bool:
        return (await self.call("initiatives", "GET", f"/api/v1/initiatives/{iid}", headers))["status"] == status

    async def _returned(self, iid: str, headers: dict[str, str]) -> dict | None:
        budget = await self.call("vouchers", "GET", f"/api/v1/initiative-budgets/{iid}", headers)
        return budget if budget["status"] == "completed" else None

    async def events_about(self, *keys: str, topics=("initiatives.events", "vouchers.events")) -> list[tuple[str, str]]:
        """(topic, CloudEvents type) of every event on Kafka keyed by one of `keys`, in order per topic."""
        consumer = AIOKafkaConsumer(
            *topics, bootstrap_servers=self.endpoints.kafka, auto_offset_reset="earliest", enable_auto_commit=False
        )
        await consumer.start()
        found: list[tuple[str, str]] = []
        try:
            wanted = {key.encode() for key in keys}
            while batch := await consumer.getmany(timeout_ms=1500, max_records=50_000):
                for records in batch.values():
                    found += [(r.topic, dict(r.headers)["ce_type"].decode()) for r in records if r.key in wanted]
        finally:
            await consumer.stop()
        return found

    async def walk_equal_shares(self) -> dict[str, Any]:
        """An Equal Shares round of the wijk: two approved initiatives, residents of the wijk approve what they like
        (one changes their ballot), the official closes the round, the Method of Equal Shares decides and explains,
        and the round is published as a Pabulib file. Returns the ids a test needs."""
        official = self.official()
        wanted = (("Speelplek Oudekerksplein", BUURTEN[1], 30_000), ("Buurtmoestuin Zeedijk", BUURTEN[2], 40_000))
        ids = []
        for title, buurt, cents in wanted:
            owner = self.resident(f"es-{buurt[-1]}", buurt)
            initiative = await self.call(
                "initiatives",
                "POST",
                "/api/v1/initiatives",
                owner,
                {
                    "title": f"{title} {self.run}",
                    "summary": title,
                    "description": f"{title}, voor en door de buurt.",
                    "area_code": buurt,
                    "category": "play" if "Speel" in title else "green",
                    "budget_lines": [{"description": title.lower(), "amount_cents": cents}],
                },
            )
            state = await self.call("initiatives", "POST", f"/api/v1/initiatives/{initiative['id']}/submit", owner)
            n = 0
            while state["status"] == "gathering_support":
                n += 1
                state = await self.call(
                    "initiatives",
                    "POST",
                    f"/api/v1/initiatives/{initiative['id']}/supports",
                    self.resident(f"es-steun{n}", buurt),
                )
            await self.call(
                "initiatives",
                "POST",
                f"/api/v1/initiatives/{initiative['id']}/review",
                official,
                {"decision": "approve", "approved_amount_cents": cents},
            )
            ids.append(initiative["id"])
        play, garden = ids
        now = datetime.now(UTC)
        round_ = await self.call(
            "vouchers",
            "POST",
            "/api/v1/rounds",
            official | {"Idempotency-Key": f"equal-shares-round-{self.run}"},
            {
                "area_code": WIJK,
                "name": f"Gelijke delen Burgwallen {self.run}",
                "total_budget_cents": 60_000,
                "opens_at": (now - timedelta(minutes=1)).isoformat(),
                "closes_at": (now + timedelta(days=14)).isoformat(),
                "mechanism": "equal_shares",
            },
        )
        rid = round_["id"]
        self.step(f"an Equal Shares round of € 600,00 for {WIJK}: residents approve the initiatives they like")
        for iid in ids:
            await self.until(
                "the vouchers service to know the approved initiative",
                lambda iid=iid: self.call("vouchers", "GET", f"/api/v1/initiative-budgets/{iid}", official),
            )
        ballots = [("es-a", BUURTEN[1], [play]), ("es-b", BUURTEN[1], [play]), ("es-c", BUURTEN[1], [play])]
        ballots += [("es-d", BUURTEN[2], [garden]), ("es-e", BUURTEN[2], [garden]), ("es-f", BUURTEN[2], [play])]
        for name, buurt, approved in ballots:
            await self.call(
                "vouchers",
                "PUT",
                f"/api/v1/rounds/{rid}/ballots/me",
                self.resident(name, buurt),
                {"initiative_ids": approved},
            )
        await self.call(
            "vouchers",
            "PUT",
            f"/api/v1/rounds/{rid}/ballots/me",
            self.resident("es-f", BUURTEN[2]),
            {"initiative_ids": [play, garden]},
        )
        self.step(f"{len(ballots)} residents cast a ballot; one changes theirs to approve both")
        closed = await self.call("vouchers", "POST", f"/api/v1/rounds/{rid}/close", official)
        outcome = await self.call("vouchers", "GET", f"/api/v1/rounds/{rid}/outcome", official)
        for result in outcome["results"]:
            if result["initiative_id"] not in ids:
                continue
            why = (
                f"funded as number {result['position']}"
                if result["funded"]
                else f"not funded ({result['reason']}: its supporters had "
                f"€ {(result['supporters_money_cents'] or 0) / 100:,.2f} left of their shares, it costs "
                f"€ {result['cost_cents'] / 100:,.2f})"
            )
            self.step(f"  {result['title']}: {result['supporters']} supporters, {why}")
        self.step(
            f"the official closes the round: {outcome['voters']} voters, € {outcome['funded_cents'] / 100:,.2f} "
            f"awarded, € {closed['totals'].get('returned', 0) / 100:,.2f} back to the municipality"
        )
        funded = [r["initiative_id"] for r in outcome["results"] if r["funded"] and r["initiative_id"] in ids]
        for iid in funded:
            await self.until(
                "the funded initiative to be funded", lambda iid=iid: self._status_is(iid, official, "funded")
            )
        pabulib = await self.http.get(
            f"{self.endpoints.vouchers}/api/v1/rounds/{rid}/pabulib", headers=self.resident("es-a", BUURTEN[1])
        )
        if pabulib.status_code != 200:
            raise Refused(pabulib)
        self.step(f"the round as a Pabulib file: {len(pabulib.text.splitlines())} lines, votes under voter numbers")
        return {"round_id": rid, "initiative_ids": ids, "funded": funded, "outcome": outcome, "pabulib": pabulib.text}

    async def walk_bank(self, webhook_url: str | None = None) -> dict[str, Any]:
        """A payout through the bank: the festival's initiator gives the bank account, claims, the official approves
        and closes the payout batch, finance downloads its SEPA pain.001 file and uploads the bank's camt.053
        statement, which settles the payout (uploaded twice, it settles it once). Makes the committee round's
        festival when the journey has not walked yet."""
        owner, official, finance = self.resident("cem", BUURTEN[0]), self.official(), self.finance()
        title = f"Buurtfeest Zeedijk {self.run}"
        listed = await self.call("initiatives", "GET", f"/api/v1/initiatives?area_code={BUURTEN[0]}&limit=100", owner)
        festival = next((item["id"] for item in listed["items"] if item["title"] == title), None)
        if festival is None:
            await self.committee_round(official)
            listed = await self.call(
                "initiatives", "GET", f"/api/v1/initiatives?area_code={BUURTEN[0]}&limit=100", owner
            )
            festival = next(item["id"] for item in listed["items"] if item["title"] == title)
        subscription = None
        if webhook_url:
            types = ("payout-batch-closed", "payout-settled", "payout-returned", "payout-cancelled")
            subscription = await self.call(
                "notifications",
                "POST",
                "/api/v1/webhook-subscriptions",
                self.admin(),
                {
                    "url": webhook_url,
                    "event_types": [f"nl.buurtkracht.vouchers.{name}.v1" for name in types],
                    "description": "finance: the bank round trip",
                },
            )
            self.step("an admin subscribes the finance system to the batch and settlement events")
        account = await self.call(
            "vouchers",
            "PUT",
            f"/api/v1/initiative-budgets/{festival}/bank-account",
            owner,
            {"iban": "NL91 ABNA 0417 1643 00", "account_holder": "Stichting Buurtfeest Zeedijk"},
        )
        self.step(f"Cem gives the festival's bank account: {account['iban_masked']} ({account['bic']}, checked)")
        claim = await self.call(
            "vouchers",
            "POST",
            "/api/v1/expense-claims",
            owner | {"Idempotency-Key": f"bank-claim-{self.run}"},
            {
                "initiative_id": festival,
                "supplier": "Podiumverhuur Zeedijk",
                "amount_cents": 25_000,
                "invoice_reference": f"P-2026-{self.run}",
            },
        )
        decided = await self.call(
            "vouchers",
            "POST",
            f"/api/v1/expense-claims/{claim['id']}/decision",
            official | {"Idempotency-Key": f"bank-decide-{self.run}"},
            {"decision": "approve"},
        )
        reference = decided["payout_reference"]
        payouts = await self.call("vouchers", "GET", "/api/v1/payouts?status=requested&limit=100", finance)
        batch_id = next(p["batch_id"] for p in payouts["items"] if p["id"] == decided["payout_id"])
        self.step(
            f"Cem claims the stage hire of € 250,00; approved, payout {reference} waits in payout batch {batch_id}"
        )
        batch = await self.call(
            "vouchers", "POST", f"/api/v1/payout-batches/{batch_id}/close", official, expect=(200, 409)
        )
        batch = await self.call("vouchers", "GET", f"/api/v1/payout-batches/{batch_id}", finance)
        answer = await self.http.get(
            f"{self.endpoints.vouchers}/api/v1/payout-batches/{batch_id}/pain001", headers=finance
        )
        if answer.status_code != 200:
            raise Refused(answer)
        pain001 = etree.fromstring(answer.content)
        ns = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"}
        debtor = pain001.findtext(".//p:DbtrAcct/p:Id/p:IBAN", namespaces=ns)
        amounts = {
            tx.findtext("p:PmtId/p:EndToEndId", namespaces=ns): tx.findtext("p:Amt/p:InstdAmt", namespaces=ns)
            for tx in pain001.iterfind(".//p:CdtTrfTxInf", ns)
        }
        transfers = f"{batch['payout_count']} transfer{'' if batch['payout_count'] == 1 else 's'}"
        self.step(
            f"the official closes the batch: finance downloads its SEPA pain.001 file {batch['message_reference']} "
            f"({transfers}, € {batch['total_cents'] / 100:.2f}, end-to-end id {reference}: € {amounts[reference]})"
        )
        statement_id = f"STMT-{self.run}"
        statement = bank_statement(statement_id, debtor or "", [(reference, amounts[reference])])
        xml = finance | {"Content-Type": "application/xml"}
        read = await self.call("vouchers", "POST", "/api/v1/bank-statements", xml, content=statement)
        again = await self.call("vouchers", "POST", "/api/v1/bank-statements", xml, content=statement)
        budget = await self.call("vouchers", "GET", f"/api/v1/initiative-budgets/{festival}", owner)
        self.step(
            f"the bank's camt.053 statement {statement_id} comes back: {read['settled']} settled, "
            f"{read['reported']} reported; uploaded again, {again['settled']} settled ({again['already_read']} lines "
            f"read before); the festival has € {budget['paid_cents'] / 100:.2f} paid"
        )
        return {
            "initiative_id": festival,
            "owner": owner,
            "payout_id": decided["payout_id"],
            "payout_reference": reference,
            "batch_id": batch_id,
            "statement_id": statement_id,
            "read": read,
            "again": again,
            "budget": budget,
            "subscription": subscription,
            "pain001": answer.content,
        }

    async def walk_help(self) -> dict[str, Any]:
        """Nobody asked me: neighbours say what they could help with, an initiative asks for help, the system asks a
        neighbour whose offer fits personally (a message in their inbox), they say yes and volunteer, and the request
        is filled. The initiators see only who said yes. At the end the neighbours withdraw their offers. Returns the
        ids a test needs."""
        bas, cem, dirk = (
            self.resident("bas", BUURTEN[1]),
            self.resident("cem", BUURTEN[2]),
            self.resident("dirk", BUURTEN[1]),
        )
        offers = (
            (bas, {"tags": ["klussen", "tuinieren"], "reach": "buurt", "introduction": f"Bas ({self.run}), handig"}),
            (cem, {"tags": ["klussen"], "reach": "wijk", "introduction": f"Cem ({self.run}), heeft een aanhanger"}),
            (dirk, {"tags": ["koken"], "reach": "buurt", "introduction": f"Dirk ({self.run})"}),
        )
        for neighbour, offer in offers:
            terms = offer | {"hours_per_month": 6, "max_asks_per_month": 2}
            await self.call("initiatives", "PUT", "/api/v1/offers/me", neighbour, terms)
        self.step("Bas and Cem offer to help with odd jobs (klussen), Dirk with cooking; nobody asked them yet")
        owner = self.resident("anna", BUURTEN[1])
        initiative = await self.call(
            "initiatives",
            "POST",
            "/api/v1/initiatives",
            owner,
            {
                "title": f"Opknapdag speeltuin {self.run}",
                "summary": "Samen de speeltuin opknappen",
                "description": "Hekjes repareren, banken schuren en verven.",
                "area_code": BUURTEN[1],
                "category": "play",
                "budget_lines": [{"description": "verf en gereedschap", "amount_cents": 20_000}],
                "volunteers_wanted": 1,
            },
        )
        iid = initiative["id"]
        await self.call("initiatives", "POST", f"/api/v1/initiatives/{iid}/submit", owner)
        request = await self.call(
            "initiatives",
            "POST",
            f"/api/v1/initiatives/{iid}/help-requests",
            owner,
            {"tags": ["klussen"], "description": "Hekjes repareren.", "hours_per_person": 3, "people_needed": 1},
        )
        self.step("Anna's initiative asks for one neighbour for odd jobs, about 3 hours")
        neighbours = {"Bas": bas, "Cem": cem, "Dirk": dirk}

        async def asked() -> tuple[str, dict] | None:
            for name, neighbour in neighbours.items():
                export = await self.call("initiatives", "GET", "/api/v1/me/export", neighbour)
                for ask in export["asks"]:
                    if ask["help_request_id"] == request["id"]:
                        return name, ask
            return None

        name, ask = await self.until("a neighbour to be asked", asked, timeout=90)
        helper = neighbours[name]
        self.step(f"the system asked {name} personally (their offer fits; they were not asked this month)")

        async def in_inbox() -> dict | None:
            inbox = await self.call("notifications", "GET", "/api/v1/inbox", helper)
            return next((item for item in inbox["items"] if item["kind"] == "help_asked"), None)

        message = await self.until(f"the ask in {name}'s inbox", in_inbox)
        self.step(
            f"{name}'s inbox: a personal ask ({message['kind']}) to help '{message['params']['title']}', answered "
            f"with 'Ja, ik help mee' or 'Nee, deze keer niet' on the portal's /vragen/{ask['id']}"
        )
        answered = await self.call("initiatives", "POST", f"/api/v1/asks/{ask['id']}/answer", helper, {"answer": "yes"})
        self.step(f"{name} says: Ja, ik help mee ({answered['status']})")
        requests = await self.call("initiatives", "GET", f"/api/v1/initiatives/{iid}/help-requests", owner)
        volunteers = await self.call("initiatives", "GET", f"/api/v1/initiatives/{iid}/volunteers", owner)
        self.step(
            f"Anna sees the request {requests[0]['status']} ({requests[0]['accepted_count']} of "
            f"{requests[0]['people_needed']}) and who said yes: "
            + "; ".join(helper_["introduction"] for helper_ in requests[0]["helpers"])
            + f"; {len(volunteers)} volunteer"
        )
        statistics = await self.call("initiatives", "GET", f"/api/v1/areas/{WIJK}/help-statistics", self.official())
        self.step(
            f"the wijk's official sees counts only: {statistics['offers']} residents offer help, "
            f"{statistics['asks_sent']} asked, {statistics['asks_accepted']} said yes"
        )
        for neighbour in neighbours.values():
            await self.call("initiatives", "DELETE", "/api/v1/offers/me", neighbour)
        self.step("Bas, Cem and Dirk withdraw their offers: nobody asks them again")
        return {
            "initiative_id": iid,
            "owner": owner,
            "help_request_id": request["id"],
            "asked": name,
            "ask_id": ask["id"],
            "help_requests": requests,
            "volunteers": volunteers,
            "statistics": statistics,
            "message": message,
        }

    async def close(self) -> None:
        await self.http.aclose()


CAMT053 = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"


def bank_statement(statement_id: str, iban: str, payouts: list[tuple[str, str]]) -> bytes:
    """A camt.053.001.02 statement of account `iban` as the bank sends it back: one booked debit per (end-to-end id,
    amount in euro) paid."""
    E = ElementMaker(namespace=CAMT053, nsmap={None: CAMT053})
    today = datetime.now(UTC).date().isoformat()
    entries = [
        E.Ntry(
            E.NtryRef(f"{statement_id}-{n}"),
            E.Amt(amount, Ccy="EUR"),
            E.CdtDbtInd("DBIT"),
            E.Sts("BOOK"),
            E.BookgDt(E.Dt(today)),
            E.ValDt(E.Dt(today)),
            E.AcctSvcrRef(f"{statement_id}-BANK-{n}"),
            E.BkTxCd(E.Domn(E.Cd("PMNT"), E.Fmly(E.Cd("ICDT"), E.SubFmlyCd("ESCT")))),
            E.NtryDtls(E.TxDtls(E.Refs(E.EndToEndId(reference)), E.AmtDtls(E.TxAmt(E.Amt(amount, Ccy="EUR"))))),
        )
        for n, (reference, amount) in enumerate(payouts, start=1)
    ]
    document = E.Document(
        E.BkToCstmrStmt(
            E.GrpHdr(E.MsgId(f"MSG-{statement_id}"), E.CreDtTm(f"{today}T18:00:00")),
            E.Stmt(
                E.Id(statement_id),
                E.CreDtTm(f"{today}T18:00:00"),
                E.Acct(E.Id(E.IBAN(iban))),
                E.Bal(
                    E.Tp(E.CdOrPrtry(E.Cd("OPBD"))), E.Amt("0.00", Ccy="EUR"), E.CdtDbtInd("CRDT"), E.Dt(E.Dt(today))
                ),
                *entries,
            ),
        )
    )
    return etree.tostring(document, xml_declaration=True, encoding="UTF-8")


async def demo(endpoints: Endpoints) -> None:
    journey = Journey(endpoints)
    try:
        await journey.ready()
        ids = await journey.walk()
        await journey.walk_equal_shares()
        await journey.walk_help()
        events = await journey.events_about(ids["initiative_id"], ids["round_id"])
        journey.step(f"on Kafka: {len(events)} events about the initiative and its round:")
        for topic, event_type in events:
            print(f"           {topic:20} {event_type}")
        await journey.walk_bank()
        inbox = await journey.call("notifications", "GET", "/api/v1/inbox", ids["owner"])
        journey.step(
            f"Anna's inbox: {inbox['total']} messages ({inbox['unread']} unread), e.g. "
            + "; ".join(item["kind"] for item in inbox["items"][:5])
        )
        mails = await journey.call("notifications", "GET", "/api/v1/notifications/me", ids["owner"])
        sent = [m for m in mails if m["channel"] == "email"]
        journey.step(
            f"email to Anna: {sum(m['status'] == 'sent' for m in sent)} sent of {len(sent)} "
            "(`make mail` lists what the SMTP sink received)"
        )
    finally:
        await journey.close()


DEMO_DRAFTS = (("Speeltuin opknappen demo", "draft"), ("Bankjes langs de gracht demo", "submit"))


async def demo_data(endpoints: Endpoints) -> None:
    """Load demo data once: a second run finds it and changes nothing. The last initiative is made last, so it
    marks a complete load; a load that stopped halfway is finished by the next run, without walking again."""
    journey = Journey(endpoints, run="demo")
    try:
        await journey.ready()
        await journey.register_areas()  # first: initiatives are proposed only for registered areas
        owner = journey.resident("anna", BUURTEN[1])
        existing = await journey.call("initiatives", "GET", f"/api/v1/initiatives?area_code={WIJK}&limit=100", owner)
        titles = {item["title"] for item in existing["items"]}
        if DEMO_DRAFTS[-1][0] in titles:
            print("demo data: already loaded")
            return
        if not any(title.endswith(" demo") for title in titles):
            await journey.walk()
        now = datetime.now(UTC)
        official = journey.official()
        round_ = await journey.call(
            "vouchers",
            "POST",
            "/api/v1/rounds",
            official | {"Idempotency-Key": str(uuid.uuid4())},
            {
                "area_code": WIJK,
                "name": "Buurtbudget Burgwallen 2027 demo",
                "total_budget_cents": 5_000_000,
                "opens_at": (now - timedelta(minutes=1)).isoformat(),
                "closes_at": (now + timedelta(days=90)).isoformat(),
                "mechanism": "pledge",
                "voucher_amount_cents": 2_500,
                "allow_wallet_claims": True,
            },
        )
        await journey.call(
            "vouchers",
            "POST",
            f"/api/v1/rounds/{round_['id']}/wallet-issuances",
            official,
            {"resident_ids": [f"r-pledger{n}-demo" for n in range(25)] + ["r-anna-demo", "r-bas-demo"]},
        )
        dirk = journey.resident("dirk", BUURTEN[2])
        for title, status in DEMO_DRAFTS:
            if title in titles:
                continue
            made = await journey.call(
                "initiatives",
                "POST",
                "/api/v1/initiatives",
                dirk,
                {
                    "title": title,
                    "summary": title,
                    "description": title,
                    "area_code": BUURTEN[2],
                    "category": "play" if "Speel" in title else "social",
                    "budget_lines": [{"description": "materiaal", "amount_cents": 25_000}],
                },
            )
            if status == "submit":
                await journey.call("initiatives", "POST", f"/api/v1/initiatives/{made['id']}/submit", dirk)
        print(f"demo data: loaded (open pledge round {round_['id']})")
    finally:
        await journey.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["demo", "demo-data"])
    args = parser.parse_args()
    try:
        asyncio.run(demo(Endpoints()) if args.command == "demo" else demo_data(Endpoints()))
    except (Refused, TimeoutError) as error:
        print(f"the journey stopped: {error}", file=sys.stderr)
        raise SystemExit(1) from error
