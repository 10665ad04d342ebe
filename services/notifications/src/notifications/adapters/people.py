"""Who is who, in PostgreSQL: contact details, preferences, area follows, officials' areas, the
people involved in initiatives, the initiatives' titles and the budget rounds' names as learned from the events, and
the residents who asked to be forgotten (by a digest of their id, never the id). The only personal data of
Buurtkracht (email addresses) lives in this module's tables."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from buurtkracht_contracts.areas import enclosing, inside_patterns
from buurtkracht_kit.housekeeping import Sweep


def _around(area_code: str) -> tuple[list[str], list[str]]:
    """The CBS areas containing `area_code` (itself included), and LIKE patterns for the areas inside it."""
    return enclosing(area_code), inside_patterns(area_code)


@dataclass(frozen=True)
class Reachable:
    resident_id: str
    email: str
    language: str
    email_enabled: bool
    frequency: str
    muted_kinds: list[str]


@dataclass(frozen=True)
class Involvement:
    """An initiative a resident is involved in, as the events told it."""

    initiative_id: uuid.UUID
    title: str | None
    role: str  # initiator, supporter or volunteer


def sweeps(forgotten_days: float) -> list[Sweep]:
    """Housekeeping: a forgotten resident's digest goes after `forgotten_days`, when no event that still names
    them can come any more (the consumer's inbox retention, longer than any topic keeps a message)."""
    return [Sweep("forgotten_residents", "forgotten_at", timedelta(days=forgotten_days))]


class People:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._conn = connection
        self._titles: dict[uuid.UUID, str | None] = {}  # read in this unit of work (a batch of events asks often)
        self._round_names: dict[uuid.UUID, str | None] = {}

    # -- what the events tell ----------------------------------------------------------------
    async def learn_initiative(
        self, initiative_id: uuid.UUID, title: str, area_code: str, initiators: list[str]
    ) -> None:
        self._titles[initiative_id] = title
        await self._conn.execute(
            """INSERT INTO initiatives_known (initiative_id, title, area_code) VALUES ($1, $2, $3)
               ON CONFLICT (initiative_id) DO UPDATE SET title = EXCLUDED.title, area_code = EXCLUDED.area_code""",
            initiative_id,
            title,
            area_code,
        )
        await self._conn.execute(
            """DELETE FROM initiative_people
               WHERE initiative_id = $1 AND role = 'initiator' AND NOT resident_id = ANY($2)""",
            initiative_id,
            initiators,
        )
        await self.involve(initiative_id, initiators, "initiator")

    async def learn_round(self, round_id: uuid.UUID, name: str, area_code: str) -> None:
        self._round_names[round_id] = name
        await self._conn.execute(
            """INSERT INTO rounds_known (round_id, name, area_code) VALUES ($1, $2, $3)
               ON CONFLICT (round_id) DO UPDATE SET name = EXCLUDED.name, area_code = EXCLUDED.area_code""",
            round_id,
            name,
            area_code,
        )

    async def involve(self, initiative_id: uuid.UUID, resident_ids: list[str], role: str) -> None:
        await self._conn.execute(
            """INSERT INTO initiative_people (initiative_id, resident_id, role)
               SELECT $1, r, $3 FROM unnest($2::text[]) r ON CONFLICT DO NOTHING""",
            initiative_id,
            resident_ids,
            role,
        )

    async def uninvolve(self, initiative_id: uuid.UUID, resident_id: str, role: str) -> None:
        await self._conn.execute(
            "DELETE FROM initiative_people WHERE initiative_id = $1 AND resident_id = $2 AND role = $3",
            initiative_id,
            resident_id,
            role,
        )

    async def title_of(self, initiative_id: uuid.UUID) -> str | None:
        """The initiative's title as last learnt; read once per unit of work (only `learn_initiative` changes it)."""
        if initiative_id not in self._titles:
            self._titles[initiative_id] = await self._conn.fetchval(
                "SELECT title FROM initiatives_known WHERE initiative_id = $1", initiative_id
            )
        return self._titles[initiative_id]

    async def round_name_of(self, round_id: uuid.UUID) -> str | None:
        """The budget round's name as last learnt; read once per unit of work (only `learn_round` changes it)."""
        if round_id not in self._round_names:
            self._round_names[round_id] = await self._conn.fetchval(
                "SELECT name FROM rounds_known WHERE round_id = $1", round_id
            )
        return self._round_names[round_id]

    # -- audiences ---------------------------------------------------------------------------
    async def involved(self, initiative_id: uuid.UUID, role: str) -> list[str]:
        rows = await self._conn.fetch(
            "SELECT resident_id FROM initiative_people WHERE initiative_id = $1 AND role = $2 ORDER BY resident_id",
            initiative_id,
            role,
        )
        return [r["resident_id"] for r in rows]

    async def followers(self, area_code: str) -> list[str]:
        """Residents following the area, an area around it, or an area inside it."""
        containing, inside = _around(area_code)
        rows = await self._conn.fetch(
            """SELECT DISTINCT resident_id FROM area_follows
               WHERE area_code = ANY($1::text[]) OR area_code LIKE ANY($2::text[]) ORDER BY resident_id""",
            containing,
            inside,
        )
        return [r["resident_id"] for r in rows]

    async def officials(self, area_code: str) -> list[str]:
        """Officials responsible for the area or an area around it."""
        containing, _ = _around(area_code)
        rows = await self._conn.fetch(
            "SELECT DISTINCT official_id FROM official_areas WHERE area_code = ANY($1::text[]) ORDER BY official_id",
            containing,
        )
        return [r["official_id"] for r in rows]

    async def reachable(self, resident_ids: list[str]) -> dict[str, Reachable]:
        """Contact details and preferences of those of `resident_ids` who registered an address."""
        rows = await self._conn.fetch(
            """SELECT c.resident_id, c.email, c.language, coalesce(p.email_enabled, true) AS email_enabled,
                      coalesce(p.frequency, 'immediate') AS frequency, coalesce(p.muted_kinds, '{}') AS muted_kinds
               FROM contact_details c LEFT JOIN preferences p ON p.resident_id = c.resident_id
               WHERE c.resident_id = ANY($1::text[])""",
            resident_ids,
        )
        return {r["resident_id"]: Reachable(**dict(r)) for r in rows}

    # -- what residents tell -----------------------------------------------------------------
    async def set_contact(self, resident_id: str, email: str, language: str) -> None:
        await self._conn.execute(
            """INSERT INTO contact_details (resident_id, email, language) VALUES ($1, $2, $3)
               ON CONFLICT (resident_id) DO UPDATE SET email = $2, language = $3, updated_at = now()""",
            resident_id,
            email,
            language,
        )

    async def contact(self, resident_id: str) -> asyncpg.Record | None:
        return await self._conn.fetchrow(
            "SELECT email, language, updated_at FROM contact_details WHERE resident_id = $1", resident_id
        )

    async def forget_contact(self, resident_id: str) -> None:
        """Remove what registering an address stored: the address and language, and an official's areas."""
        await self._conn.execute("DELETE FROM contact_details WHERE resident_id = $1", resident_id)
        await self._conn.execute("DELETE FROM official_areas WHERE official_id = $1", resident_id)

    async def forget_everything(self, resident_id: str) -> None:
        """Remove everything of the resident in these tables: contact details, preferences, follows, an official's
        areas, and their involvement in initiatives."""
        await self.forget_contact(resident_id)
        for table in ("preferences", "area_follows", "initiative_people"):
            await self._conn.execute(f"DELETE FROM {table} WHERE resident_id = $1", resident_id)

    # -- residents who asked to be forgotten -------------------------------------------------
    async def remember_forgotten(self, digest: bytes, tombstone: str) -> str:
        """Remember that the resident of `digest` was forgotten, with `tombstone`, which replaces the one of an earlier
        request: what they did between two requests gets a tombstone of its own, so no record of theirs can collide
        with one kept from before (a vote on the same proposal, a volunteering for the same initiative). Returns
        `tombstone`."""
        return await self._conn.fetchval(
            """INSERT INTO forgotten_residents (digest, tombstone) VALUES ($1, $2)
               ON CONFLICT (digest) DO UPDATE SET tombstone = EXCLUDED.tombstone, forgotten_at = now()
               RETURNING tombstone""",
            digest,
            tombstone,
        )

    async def tombstones(self, digests: list[bytes]) -> dict[bytes, str]:
        """The tombstones of those of `digests` that are of residents who were forgotten."""
        rows = await self._conn.fetch(
            "SELECT digest, tombstone FROM forgotten_residents WHERE digest = ANY($1::bytea[])", digests
        )
        return {bytes(row["digest"]): row["tombstone"] for row in rows}

    async def welcome_back(self, digest: bytes) -> None:
        """A forgotten resident who registers anew is somebody again: events naming them count from now on."""
        await self._conn.execute("DELETE FROM forgotten_residents WHERE digest = $1", digest)

    # -- what a person may read of themself --------------------------------------------------
    async def official_areas(self, official_id: str) -> list[str]:
        rows = await self._conn.fetch(
            "SELECT area_code FROM official_areas WHERE official_id = $1 ORDER BY area_code", official_id
        )
        return [r["area_code"] for r in rows]

    async def stored_preferences(self, resident_id: str) -> asyncpg.Record | None:
        """The resident's preferences with when they changed and when their last digest went out."""
        return await self._conn.fetchrow(
            """SELECT email_enabled, frequency, muted_kinds, last_digest_at, updated_at FROM preferences
               WHERE resident_id = $1""",
            resident_id,
        )

    async def involvement(self, resident_id: str) -> list[Involvement]:
        """The initiatives the resident is involved in, as learnt from the events."""
        rows = await self._conn.fetch(
            """SELECT p.initiative_id, k.title, p.role FROM initiative_people p
               LEFT JOIN initiatives_known k ON k.initiative_id = p.initiative_id
               WHERE p.resident_id = $1 ORDER BY p.initiative_id, p.role""",
            resident_id,
        )
        return [Involvement(**dict(r)) for r in rows]

    async def set_official_areas(self, official_id: str, areas: list[str]) -> None:
        await self._conn.execute("DELETE FROM official_areas WHERE official_id = $1", official_id)
        await self._conn.execute(
            "INSERT INTO official_areas (official_id, area_code) SELECT $1, a FROM unnest($2::text[]) a",
            official_id,
            areas,
        )

    async def set_preferences(
        self, resident_id: str, email_enabled: bool, frequency: str, muted_kinds: list[str]
    ) -> None:
        await self._conn.execute(
            """INSERT INTO preferences (resident_id, email_enabled, frequency, muted_kinds) VALUES ($1, $2, $3, $4)
               ON CONFLICT (resident_id) DO UPDATE SET email_enabled = $2, frequency = $3, muted_kinds = $4,
                   updated_at = now()""",
            resident_id,
            email_enabled,
            frequency,
            muted_kinds,
        )

    async def digest_sent(self, resident_id: str) -> None:
        await self._conn.execute("UPDATE preferences SET last_digest_at = now() WHERE resident_id = $1", resident_id)

    async def preferences(self, resident_id: str) -> asyncpg.Record | None:
        return await self._conn.fetchrow(
            "SELECT email_enabled, frequency, muted_kinds FROM preferences WHERE resident_id = $1", resident_id
        )

    async def set_follows(self, resident_id: str, area_codes: list[str]) -> None:
        await self._conn.execute("DELETE FROM area_follows WHERE resident_id = $1", resident_id)
        await self._conn.execute(
            "INSERT INTO area_follows (resident_id, area_code) SELECT $1, a FROM unnest($2::text[]) a",
            resident_id,
            area_codes,
        )

    async def follows(self, resident_id: str) -> list[str]:
        rows = await self._conn.fetch(
            "SELECT area_code FROM area_follows WHERE resident_id = $1 ORDER BY area_code", resident_id
        )
        return [r["area_code"] for r in rows]
