"""Offers, help requests and asks in PostgreSQL: the only SQL of asking neighbours.

- one offer per resident; withdrawing deletes it and withdraws their unanswered asks in the same transaction;
- one ask per (request, resident) (a unique key: a pass that ran twice cannot ask twice);
- one asking pass at a time: a transaction-scoped advisory lock (`take_turn`) that another pass skips instead of
  waiting for, so two replicas never plan from the same state; withdrawing an offer (and forgetting a resident) takes
  the same lock and waits for it (`wait_for_turn`), so no pass that read the offer before stores an ask after.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from buurtkracht_contracts.areas import inside_patterns, is_area_code

from ..domain.help import HelpRequest, History, Offer, Reach

ASKING_LOCK_KEY = 0x41534B494E47  # "ASKING"


@dataclass(frozen=True)
class StoredRequest:
    """A help request as its initiators see it: never who was asked or who said no."""

    id: uuid.UUID
    initiative_id: uuid.UUID
    area_code: str
    tags: list[str]
    description: str
    hours_per_person: int
    people_needed: int
    needed_at: datetime | None
    accepted: int
    status: str
    created_at: datetime
    filled_at: datetime | None


@dataclass(frozen=True)
class Helper:
    """A resident who said yes, with what they chose to share (their offer's introduction)."""

    resident_id: str
    introduction: str
    accepted_at: datetime


@dataclass(frozen=True)
class StoredAsk:
    id: uuid.UUID
    help_request_id: uuid.UUID
    initiative_id: uuid.UUID
    resident_id: str
    status: str
    asked_at: datetime
    answered_at: datetime | None


@dataclass(frozen=True)
class InitiativeFacts:
    id: uuid.UUID
    area_code: str
    title: str
    initiators: list[str]


@dataclass(frozen=True)
class Statistics:
    offers: int
    offers_by_tag: dict[str, int]
    requests_open: int
    requests_filled: int
    asks_sent: int
    asks_answered: int
    asks_accepted: int
    asks_declined: int


_OFFER = "resident_id, home_buurt, reach, tags, hours_per_month, max_asks_per_month, introduction, updated_at"
_REQUEST = (
    "id, initiative_id, area_code, tags, description, hours_per_person, people_needed, needed_at, accepted, status, "
    "created_at, filled_at"
)
_ASK = "a.id, a.help_request_id, r.initiative_id, a.resident_id, a.status, a.asked_at, a.answered_at"


def _offer(row: asyncpg.Record) -> Offer:
    return Offer(
        resident_id=row["resident_id"],
        home_buurt=row["home_buurt"],
        reach=Reach(row["reach"]),
        tags=frozenset(row["tags"]),
        hours_per_month=row["hours_per_month"],
        max_asks_per_month=row["max_asks_per_month"],
        introduction=row["introduction"],
        updated_at=row["updated_at"],
    )


def _within(area_code: str) -> list[str]:
    return [area_code, *inside_patterns(area_code)] if is_area_code(area_code) else []


class HelpRepository:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._conn = connection

    # -- offers ----------------------------------------------------------------------------------------------
    async def offer_of(self, resident_id: str) -> Offer | None:
        row = await self._conn.fetchrow(f"SELECT {_OFFER} FROM offers WHERE resident_id = $1", resident_id)
        return _offer(row) if row else None

    async def put_offer(self, offer: Offer) -> None:
        await self._conn.execute(
            """INSERT INTO offers (resident_id, home_buurt, reach, reach_area, tags, hours_per_month,
                                   max_asks_per_month, introduction, updated_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
               ON CONFLICT (resident_id) DO UPDATE SET home_buurt = $2, reach = $3, reach_area = $4, tags = $5,
                   hours_per_month = $6, max_asks_per_month = $7, introduction = $8, updated_at = $9""",
            offer.resident_id,
            offer.home_buurt,
            offer.reach.value,
            offer.reach_area,
            sorted(offer.tags),
            offer.hours_per_month,
            offer.max_asks_per_month,
            offer.introduction,
            offer.updated_at,
        )

    async def delete_offer(self, resident_id: str) -> bool:
        return (await self._conn.execute("DELETE FROM offers WHERE resident_id = $1", resident_id)) != "DELETE 0"

    async def withdraw_open_asks(self, resident_id: str, at: datetime) -> int:
        result = await self._conn.execute(
            "UPDATE asks SET status = 'withdrawn', answered_at = $2 WHERE resident_id = $1 AND status = 'open'",
            resident_id,
            at,
        )
        return int(result.split()[-1])

    # -- help requests -----------------------------------------------------------------------------------------
    async def add_request(self, request: HelpRequest, requested_by: str) -> None:
        await self._conn.execute(
            """INSERT INTO help_requests (id, initiative_id, area_code, tags, description, hours_per_person,
                                          people_needed, needed_at, requested_by, created_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
            request.id,
            request.initiative_id,
            request.area_code,
            sorted(request.tags),
            request.description,
            request.hours_per_person,
            request.people_needed,
            request.needed_at,
            requested_by,
            request.created_at,
        )

    async def request(self, request_id: uuid.UUID, *, for_update: bool = False) -> StoredRequest | None:
        row = await self._conn.fetchrow(
            f"SELECT {_REQUEST} FROM help_requests WHERE id = $1" + (" FOR UPDATE" if for_update else ""), request_id
        )
        return StoredRequest(**dict(row)) if row else None

    async def requests_of(self, initiative_id: uuid.UUID) -> list[StoredRequest]:
        rows = await self._conn.fetch(
            f"SELECT {_REQUEST} FROM help_requests WHERE initiative_id = $1 ORDER BY created_at, id", initiative_id
        )
        return [StoredRequest(**dict(row)) for row in rows]

    async def helpers(self, request_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Helper]]:
        """Who said yes to each request, with what they shared when they did (their volunteer sign-up's text)."""
        rows = await self._conn.fetch(
            """SELECT a.help_request_id, a.resident_id, coalesce(v.offer, '') AS introduction, a.answered_at
               FROM asks a JOIN help_requests r ON r.id = a.help_request_id
               LEFT JOIN volunteers v ON v.initiative_id = r.initiative_id AND v.resident_id = a.resident_id
               WHERE a.help_request_id = ANY ($1) AND a.status = 'yes' ORDER BY a.answered_at, a.resident_id""",
            request_ids,
        )
        found: dict[uuid.UUID, list[Helper]] = {request_id: [] for request_id in request_ids}
        for row in rows:
            found[row["help_request_id"]].append(Helper(row["resident_id"], row["introduction"], row["answered_at"]))
        return found

    async def record_answer(self, request_id: uuid.UUID, accepted: int, filled_at: datetime | None) -> None:
        """The request's yeses; when it filled, its unanswered asks lapse."""
        await self._conn.execute(
            """UPDATE help_requests SET accepted = $2, status = CASE WHEN $3::timestamptz IS NULL THEN 'open'
                   ELSE 'filled' END, filled_at = $3 WHERE id = $1""",
            request_id,
            accepted,
            filled_at,
        )
        if filled_at is not None:
            await self._conn.execute(
                "UPDATE asks SET status = 'lapsed' WHERE help_request_id = $1 AND status = 'open'", request_id
            )

    # -- asks --------------------------------------------------------------------------------------------------
    async def ask(self, ask_id: uuid.UUID, *, for_update: bool = False) -> StoredAsk | None:
        row = await self._conn.fetchrow(
            f"SELECT {_ASK} FROM asks a JOIN help_requests r ON r.id = a.help_request_id WHERE a.id = $1"
            + (" FOR UPDATE OF a" if for_update else ""),
            ask_id,
        )
        return StoredAsk(**dict(row)) if row else None

    async def answer(self, ask_id: uuid.UUID, status: str, at: datetime) -> None:
        await self._conn.execute("UPDATE asks SET status = $2, answered_at = $3 WHERE id = $1", ask_id, status, at)

    async def asks_of(self, resident_id: str) -> list[StoredAsk]:
        rows = await self._conn.fetch(
            f"""SELECT {_ASK} FROM asks a JOIN help_requests r ON r.id = a.help_request_id
                WHERE a.resident_id = $1 ORDER BY a.asked_at, a.id""",
            resident_id,
        )
        return [StoredAsk(**dict(row)) for row in rows]

    # -- the asking pass ---------------------------------------------------------------------------------------
    async def take_turn(self) -> bool:
        """Whether this transaction may run the asking pass: no other holds the lock (held until it ends)."""
        return bool(await self._conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", ASKING_LOCK_KEY))

    async def wait_for_turn(self) -> None:
        """Take the asking pass's lock, waiting for a pass that runs (held until this transaction ends): whatever
        this transaction changes, no pass planned from the state before it."""
        await self._conn.execute("SELECT pg_advisory_xact_lock($1)", ASKING_LOCK_KEY)

    async def open_requests(
        self,
        now: datetime,
        waiting_since: datetime,
        initiative_statuses: list[str],
        limit: int,
        after: tuple[datetime, uuid.UUID] | None = None,
    ) -> tuple[list[HelpRequest], tuple[datetime, uuid.UUID] | None]:
        """Up to `limit` open requests (after `after` in creation order) of initiatives in `initiative_statuses` not
        needed before `now`, locked; those that still miss people, each with its asks that still hold a place (asked
        after `waiting_since`, unanswered) and whom not to ask: its initiators, its volunteers and whoever was asked
        for it. Also where the next batch starts: None when this was the last."""
        rows = await self._conn.fetch(
            """SELECT r.id, r.initiative_id, r.area_code, r.tags, r.description, r.hours_per_person, r.people_needed,
                      r.needed_at, r.accepted, r.created_at, i.owner_id, i.co_initiators,
                      (SELECT count(*) FROM asks a
                       WHERE a.help_request_id = r.id AND a.status = 'open' AND a.asked_at > $2) AS waiting
               FROM help_requests r JOIN initiatives i ON i.id = r.initiative_id
               WHERE r.status = 'open' AND i.status = ANY ($3) AND (r.needed_at IS NULL OR r.needed_at > $1)
                 AND (r.created_at, r.id) > ($5, $6)
               ORDER BY r.created_at, r.id LIMIT $4 FOR UPDATE OF r""",
            now,
            waiting_since,
            initiative_statuses,
            limit,
            *(after or (datetime.min.replace(tzinfo=UTC), uuid.UUID(int=0))),
        )
        following = (rows[-1]["created_at"], rows[-1]["id"]) if len(rows) == limit else None
        rows = [row for row in rows if row["people_needed"] - row["accepted"] - row["waiting"] > 0]
        if not rows:
            return [], following
        ids = [row["id"] for row in rows]
        asked: dict[uuid.UUID, set[str]] = {request_id: set() for request_id in ids}
        for row in await self._conn.fetch(
            "SELECT help_request_id, resident_id FROM asks WHERE help_request_id = ANY ($1)", ids
        ):
            asked[row["help_request_id"]].add(row["resident_id"])
        volunteers: dict[uuid.UUID, set[str]] = {}
        for row in await self._conn.fetch(
            "SELECT initiative_id, resident_id FROM volunteers WHERE initiative_id = ANY ($1)",
            list({row["initiative_id"] for row in rows}),
        ):
            volunteers.setdefault(row["initiative_id"], set()).add(row["resident_id"])
        return [
            HelpRequest(
                id=row["id"],
                initiative_id=row["initiative_id"],
                area_code=row["area_code"],
                tags=frozenset(row["tags"]),
                description=row["description"],
                hours_per_person=row["hours_per_person"],
                people_needed=row["people_needed"],
                created_at=row["created_at"],
                needed_at=row["needed_at"],
                accepted=row["accepted"],
                waiting=row["waiting"],
                not_to_ask=frozenset(
                    asked[row["id"]]
                    | volunteers.get(row["initiative_id"], set())
                    | {row["owner_id"], *row["co_initiators"]}
                ),
            )
            for row in rows
        ], following

    async def offers_reaching(self, areas: list[str], tags: list[str]) -> list[Offer]:
        """The offers whose reach is one of `areas` and that share a tag with `tags`, with what planning needs of
        them (not their introduction)."""
        rows = await self._conn.fetch(
            """SELECT resident_id, home_buurt, reach, tags, hours_per_month, max_asks_per_month FROM offers
               WHERE reach_area = ANY ($1) AND tags && $2""",
            areas,
            tags,
        )
        reach = {value.value: value for value in Reach}
        return [
            Offer(
                r["resident_id"],
                r["home_buurt"],
                reach[r["reach"]],
                frozenset(r["tags"]),
                r["hours_per_month"],
                r["max_asks_per_month"],
            )
            for r in rows
        ]

    async def histories(self, resident_ids: list[str], since: datetime) -> dict[str, History]:
        """What asking did to each of the residents: their asks after `since`, when they were last asked and when
        they last said no."""
        rows = await self._conn.fetch(
            """SELECT resident_id, max(asked_at) AS last_asked,
                      array_agg(asked_at) FILTER (WHERE asked_at > $2) AS recent,
                      max(answered_at) FILTER (WHERE status = 'no') AS last_declined
               FROM asks WHERE resident_id = ANY ($1) GROUP BY resident_id""",
            resident_ids,
            since,
        )
        return {
            row["resident_id"]: History(list(row["recent"] or []), row["last_asked"], row["last_declined"])
            for row in rows
        }

    async def add_asks(self, asks: list[tuple[uuid.UUID, uuid.UUID, str, str, datetime]]) -> None:
        """Store asks as (id, request id, resident, the request's area, asked at)."""
        if asks:
            ids, requests, residents, areas, times = (list(column) for column in zip(*asks, strict=True))
            await self._conn.execute(
                """INSERT INTO asks (id, help_request_id, resident_id, area_code, asked_at)
                   SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[])""",
                ids,
                requests,
                residents,
                areas,
                times,
            )

    async def initiative_facts(self, initiative_ids: list[uuid.UUID]) -> dict[uuid.UUID, InitiativeFacts]:
        rows = await self._conn.fetch(
            "SELECT id, area_code, title, owner_id, co_initiators FROM initiatives WHERE id = ANY ($1)", initiative_ids
        )
        return {
            row["id"]: InitiativeFacts(
                row["id"], row["area_code"], row["title"], [row["owner_id"], *row["co_initiators"]]
            )
            for row in rows
        }

    # -- what officials see ------------------------------------------------------------------------------------
    async def statistics(self, area_code: str) -> Statistics:
        """Counts for the area and every area in it: offers by their resident's buurt, requests and asks by the
        request's area. No person."""
        patterns = _within(area_code)
        by_tag = await self._conn.fetch(
            """SELECT tag, count(*) AS offers FROM offers, unnest(tags) AS tag
               WHERE home_buurt LIKE ANY ($1) GROUP BY tag ORDER BY tag""",
            patterns,
        )
        row = await self._conn.fetchrow(
            """SELECT (SELECT count(*) FROM offers WHERE home_buurt LIKE ANY ($1)) AS offers,
                      (SELECT count(*) FROM help_requests WHERE area_code LIKE ANY ($1) AND status = 'open')
                          AS requests_open,
                      (SELECT count(*) FROM help_requests WHERE area_code LIKE ANY ($1) AND status = 'filled')
                          AS requests_filled,
                      count(*) AS asks_sent,
                      count(*) FILTER (WHERE status IN ('yes', 'no')) AS asks_answered,
                      count(*) FILTER (WHERE status = 'yes') AS asks_accepted,
                      count(*) FILTER (WHERE status = 'no') AS asks_declined
               FROM asks WHERE area_code LIKE ANY ($1)""",
            patterns,
        )
        return Statistics(offers_by_tag={r["tag"]: r["offers"] for r in by_tag}, **dict(row))

    async def offers_by_wijk_and_tag(self) -> list[tuple[str, str, int]]:
        """The number of offers per wijk (of the resident's buurt) and tag, for the metric."""
        rows = await self._conn.fetch(
            """SELECT 'WK' || substr(home_buurt, 3, 6) AS wijk, tag, count(*) AS offers
               FROM offers, unnest(tags) AS tag GROUP BY 1, 2 ORDER BY 1, 2"""
        )
        return [(row["wijk"], row["tag"], row["offers"]) for row in rows]

    # -- forgetting ----------------------------------------------------------------------------------------------
    async def forget(self, resident_id: str, tombstone: str) -> tuple[int, int]:
        """The resident's offer is gone; their asks (and the requests they made) count on under `tombstone`.
        Returns (offers, asks) changed."""
        await self.wait_for_turn()
        offers = await self.delete_offer(resident_id)
        await self._conn.execute(
            "UPDATE asks SET status = 'withdrawn', answered_at = now() WHERE resident_id = $1 AND status = 'open'",
            resident_id,
        )
        asks = await self._conn.execute(
            "UPDATE asks SET resident_id = $2 WHERE resident_id = $1", resident_id, tombstone
        )
        await self._conn.execute(
            "UPDATE help_requests SET requested_by = $2 WHERE requested_by = $1", resident_id, tombstone
        )
        return int(offers), int(asks.split()[-1])
