"""Steering groups in PostgreSQL: one row per area that has one, and its members in the order registered.

`get(..., for_update=True)` takes the area's group lock (a transaction-scoped advisory lock, since an area without
a group has no row to lock), so two officials registering the group of one area at once replace it one after the
other. Award and claim commands only read it: each reads the members in one statement, as they were committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from ..domain.steering import Member, SteeringGroup

STEERING_GROUP_LOCKS = 0x7374656572  # the seed of the advisory lock keys of steering groups


@dataclass(frozen=True)
class Membership:
    area_code: str
    chair: bool


@dataclass(frozen=True)
class GroupRegistration:
    """Who last registered an area's steering group, and when."""

    area_code: str
    changed_at: datetime


class SteeringGroupRepository:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._conn = connection

    async def get(self, area_code: str, *, for_update: bool = False) -> SteeringGroup:
        """The area's steering group (without members when none was registered); `for_update` first takes the
        area's group lock for the rest of the transaction."""
        if for_update:
            await self._conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1::text, $2))", area_code, STEERING_GROUP_LOCKS
            )
        row = await self._conn.fetchrow(
            "SELECT changed_by, changed_at FROM steering_groups WHERE area_code = $1", area_code
        )
        if row is None:
            return SteeringGroup(area_code)
        members = await self._conn.fetch(
            "SELECT member_id, chair FROM steering_group_members WHERE area_code = $1 ORDER BY position", area_code
        )
        return SteeringGroup(
            area_code,
            [Member(m["member_id"], m["chair"]) for m in members],
            row["changed_by"],
            row["changed_at"],
        )

    async def save(self, group: SteeringGroup) -> None:
        """Replace the area's members with the group's (its lock is held: see `get`)."""
        await self._conn.execute(
            """INSERT INTO steering_groups (area_code, changed_by, changed_at) VALUES ($1, $2, $3)
               ON CONFLICT (area_code)
               DO UPDATE SET changed_by = EXCLUDED.changed_by, changed_at = EXCLUDED.changed_at""",
            group.area_code,
            group.changed_by,
            group.changed_at,
        )
        await self._conn.execute("DELETE FROM steering_group_members WHERE area_code = $1", group.area_code)
        await self._conn.execute(
            """INSERT INTO steering_group_members (area_code, member_id, chair, position)
               SELECT $1, m, c, p FROM unnest($2::text[], $3::boolean[]) WITH ORDINALITY AS t(m, c, p)""",
            group.area_code,
            [member.member_id for member in group.members],
            [member.chair for member in group.members],
        )

    async def areas_of(self, member_id: str) -> list[str]:
        """The areas whose steering group has `member_id` as a member."""
        rows = await self._conn.fetch(
            "SELECT area_code FROM steering_group_members WHERE member_id = $1 ORDER BY area_code", member_id
        )
        return [r["area_code"] for r in rows]

    async def memberships_of(self, member_id: str) -> list[Membership]:
        rows = await self._conn.fetch(
            "SELECT area_code, chair FROM steering_group_members WHERE member_id = $1 ORDER BY area_code", member_id
        )
        return [Membership(r["area_code"], r["chair"]) for r in rows]

    async def registered_by(self, person: str) -> list[GroupRegistration]:
        """The steering groups `person` registered last."""
        rows = await self._conn.fetch(
            "SELECT area_code, changed_at FROM steering_groups WHERE changed_by = $1 ORDER BY area_code", person
        )
        return [GroupRegistration(r["area_code"], r["changed_at"]) for r in rows]

    async def forget_person(self, person: str, tombstone: str) -> int:
        """The groups `person` registered, and their memberships, name `tombstone` in their place: the group's row
        first, then its members, as `save` writes them. Returns how many rows changed."""
        registered = await self._conn.execute(
            "UPDATE steering_groups SET changed_by = $2 WHERE changed_by = $1", person, tombstone
        )
        memberships = await self._conn.execute(
            "UPDATE steering_group_members SET member_id = $2 WHERE member_id = $1", person, tombstone
        )
        return int(registered.split()[-1]) + int(memberships.split()[-1])
