"""The outcome of Equal Shares rounds in PostgreSQL: the ballots sealed as numbered votes at the close, and the
outcome with its explanation, written once (triggers refuse any change)."""

from __future__ import annotations

import json
import uuid
from fractions import Fraction

import asyncpg

from buurtkracht_contracts.areas import inside_patterns

from ..domain.equal_shares import Candidate, Outcome, Result, SpentOn
from ..domain.pabulib import Vote
from ..domain.rounds import Round
from .areas import in_areas


class EqualSharesRepository:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._conn = connection

    async def candidates(self, round_: Round) -> list[Candidate]:
        """The approved initiatives of the round's area, their rows locked in id order (after the round's lock): what
        the close may fund."""
        rows = await self._conn.fetch(
            f"""SELECT id, title, approved_amount_cents FROM initiatives
                WHERE status = 'approved' AND {in_areas("area_code", "$1", "$2")}
                ORDER BY id FOR UPDATE""",
            [round_.area_code],
            inside_patterns(round_.area_code),
        )
        return [Candidate(r["id"], r["title"], r["approved_amount_cents"]) for r in rows]

    async def seal_votes(self, round_id: uuid.UUID, candidates: list[uuid.UUID]) -> list[list[uuid.UUID]]:
        """The round's ballots as they count: their approvals of `candidates` only, those that approve none left
        out; numbered 1, 2, ... in the order of a digest of the round and the resident (no resident id is kept, and
        the numbers say nothing of who voted when). Returns the approvals of each vote, in voter order.."""
        rows = await self._conn.fetch(
            """WITH counted AS (
                   SELECT ARRAY(SELECT x FROM unnest(b.initiative_ids) WITH ORDINALITY AS t(x, n)
                                WHERE x = ANY($2::uuid[]) ORDER BY n) AS approved,
                          sha256(convert_to(b.round_id::text || ':' || b.resident_id, 'UTF8')) AS digest
                   FROM ballots b WHERE b.round_id = $1),
               numbered AS (
                   SELECT row_number() OVER (ORDER BY digest)::integer AS voter, approved
                   FROM counted WHERE cardinality(approved) > 0)
               INSERT INTO equal_shares_votes (round_id, voter, initiative_ids)
               SELECT $1, voter, approved FROM numbered
               RETURNING voter, initiative_ids""",
            round_id,
            candidates,
        )
        return [list(r["initiative_ids"]) for r in sorted(rows, key=lambda r: r["voter"])]

    async def add(self, round_id: uuid.UUID, outcome: Outcome) -> None:
        """The outcome's row, before its results."""
        await self._conn.execute(
            """INSERT INTO equal_shares_outcomes (round_id, budget_cents, voters, share_cents, method)
               VALUES ($1, $2, $3, $4, $5)""",
            round_id,
            outcome.budget_cents,
            outcome.voters,
            str(outcome.share_cents),
            outcome.method,
        )

    async def add_results(self, round_id: uuid.UUID, outcome: Outcome) -> None:
        results = outcome.results
        await self._conn.executemany(
            """INSERT INTO equal_shares_results (round_id, initiative_id, title, cost_cents, supporters, funded,
                   position, reason, supporters_money_cents, spent_on, shown)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11)""",
            [
                (
                    round_id,
                    r.initiative_id,
                    r.title,
                    r.cost_cents,
                    r.supporters,
                    r.funded,
                    r.position,
                    r.reason,
                    r.supporters_money_cents,
                    json.dumps([{"initiative_id": str(s.initiative_id), "cents": s.cents} for s in r.spent_on]),
                    shown,
                )
                for shown, r in enumerate(results, 1)
            ],
        )

    async def outcome(self, round_id: uuid.UUID) -> Outcome | None:
        head = await self._conn.fetchrow("SELECT * FROM equal_shares_outcomes WHERE round_id = $1", round_id)
        if head is None:
            return None
        rows = await self._conn.fetch("SELECT * FROM equal_shares_results WHERE round_id = $1 ORDER BY shown", round_id)
        results = tuple(
            Result(
                r["initiative_id"],
                r["title"],
                r["cost_cents"],
                r["supporters"],
                r["funded"],
                r["position"],
                r["reason"],
                r["supporters_money_cents"],
                tuple(SpentOn(uuid.UUID(s["initiative_id"]), s["cents"]) for s in json.loads(r["spent_on"])),
            )
            for r in rows
        )
        return Outcome(head["budget_cents"], head["voters"], Fraction(head["share_cents"]), results, head["method"])

    async def votes(self, round_id: uuid.UUID) -> list[Vote]:
        rows = await self._conn.fetch(
            "SELECT voter, initiative_ids FROM equal_shares_votes WHERE round_id = $1 ORDER BY voter", round_id
        )
        return [Vote(r["voter"], tuple(r["initiative_ids"])) for r in rows]
