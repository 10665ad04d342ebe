"""What the vouchers tests that run commands on a scratch PostgreSQL share: running one command through the service
layer in a unit of work of its own, and opening a round the way an official of its area does. Each module brings
its own `pool` on the migrated scratch database (pool sizes differ: the concurrency tests need many connections).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from vouchers.adapters.unit_of_work import VouchersUnitOfWork
from vouchers.domain.rounds import Mechanism, Round
from vouchers.service import rounds

from buurtkracht_contracts.event import source_urn
from buurtkracht_kit.auth import Principal, Role

SOURCE = source_urn("00000000000000000000", "buurtkracht-vouchers")

Once = Callable[[Callable[[VouchersUnitOfWork], Awaitable[Any]]], Awaitable[Any]]
OpenRound = Callable[..., Awaitable[Round]]


@pytest.fixture
def once(pool) -> Once:
    """`await once(command)`: `command(uow)` in a unit of work of its own on the module's `pool`, committed; its
    result."""

    async def run(command):
        async with VouchersUnitOfWork(pool, SOURCE) as uow:
            result = await command(uow)
            await uow.commit()
            return result

    return run


@pytest.fixture
def open_round(once: Once) -> OpenRound:
    """`await open_round(mechanism, area)`: the round an official of `area` opens, open since a minute ago for thirty
    days, with `total` cents; a pledge round gives each wallet `voucher` cents, a committee round awards on `quorum`
    votes."""

    async def run(
        mechanism: Mechanism,
        area: str,
        *,
        total: int = 100_000,
        voucher: int = 2_000,
        quorum: int = 1,
        name: str = "Buurtbudget",
    ) -> Round:
        official = Principal("o-1", frozenset({Role.OFFICIAL}), frozenset({area}))
        now = datetime.now(UTC)
        return await once(
            lambda uow: rounds.open_round(
                uow,
                official,
                area_code=area,
                name=name,
                mechanism=mechanism,
                total_budget_cents=total,
                opens_at=now - timedelta(minutes=1),
                closes_at=now + timedelta(days=30),
                voucher_amount_cents=voucher if mechanism is Mechanism.PLEDGE else None,
                allow_wallet_claims=False,
                committee_quorum=quorum if mechanism is Mechanism.COMMITTEE else None,
            )
        )

    return run
